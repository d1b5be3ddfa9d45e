"""The desired state: ``experiments/*.yaml`` -> :class:`~expsync.model.DesiredState` plus diagnostics.

``yamlload`` is the strict YAML reader (positions, no aliases/tags/merge keys), ``schema`` the
pydantic models of the file format, ``rules`` the offline semantic checks (E2xx) and ``loader``
the composition of the three over a folder. Nothing here touches a database or a secret store.
"""
