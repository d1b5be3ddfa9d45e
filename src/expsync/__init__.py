"""expsync: a declarative GitOps reconciler for model experiments in an AI gateway.

Start here. A command runs one pipeline; imports point one way, from ``cli`` down to the
ground floor (the rule, as a table: ``tests/test_layers.py`` ``LAYERS``, shown in README
"Development")::

    cli.py    flags + Settings (settings.py, the environment read once) -> stages -> exit code
      desired/  YAML files -> DesiredState (+ diagnostics)          (no I/O but reading files)
      secrets/  SecretRef -> Secret                                 (env, file, AWS SM, Vault)
      state/    database -> ActualState                             (constant number of queries)
      pipeline  read actual + compare keys + plan, inside one snapshot (plan and apply share it)
      plan/     (DesiredState, ActualState, key comparisons) -> Plan (pure)
      render/   Plan -> str                                         (text, json, markdown)
      apply/    Plan -> one DB transaction                          (+ outbox rows)
      cache/    outbox -> Redis                                     (converges across crashes)
      importer/ database -> YAML files                              (``expsync import``)
      github    the sticky pull-request comment                     (GitHub REST)
    ground floor: model.py (value types), diagnostics.py, errors.py, settings.py, rules.py,
                  profiles.py, credentials.py, urls.py, escape.py, heap.py (the collector's policy),
                  records.py (``dataclass``, its methods precompiled in records_code/)

Where each rule lives (change it there, nowhere else):

==============================================  =============================================
what                                            where
==============================================  =============================================
statuses, transitions and their guards, edits   ``rules.py`` (imports only ``model``; every stage
                                                derives from it: CHECKs, index, E2xx/E3xx)
offline checks across files (E2xx)              ``desired/rules.py``
the file format (fields, patterns, refusals)    ``desired/schema.py`` (JSON Schema from it)
strict YAML (no tags, aliases, ambiguous ints)  ``desired/yamlload.py``
secret reference syntax / resolution            ``secrets/refs.py`` / ``secrets/resolve.py``
allowlist and built-in refusals of references   ``secrets/policy.py`` (``REFUSED_ENV``, ``REFUSED_DIRS``)
what is masked in output                        ``secrets/redact.py``; URLs: ``urls.py`` ``mask_url``
what a credential looks like, by name           ``credentials.py`` (``base_url`` query, JSON keys,
                                                URL query parameters)
escaping of user text per output sink           ``escape.py`` (refused on input by the schema)
security-relevant changes, a URL's origin       ``plan/security.py``
tables, CHECKs, the routing unique index        ``state/tables.py``
op types: action, phase, rank, executor         ``plan/ops.py`` (the per-op table)
gateway versions and their YAML/DB rules        ``profiles.py``; which one a run uses: ``config.py``
execution order                                 ``plan/order.py``
plan digests (stale saved plans)                ``plan/digest.py``
when two JSON values are equal (``true`` != 1)  ``plan/equality.py`` ``json_equal``
api key encryption (gateway format)             ``crypto.py``
Redis keys and the refresh                      ``model.py`` / ``cache/refresh.py``
diagnostic codes and hints                      ``diagnostics.py`` ``CODES``
exit codes; which error ends with which         ``errors.py`` ``ExitCode``; ``cli.main`` maps
environment variables                           ``settings.py`` ``Settings.from_environ``
which command imports which library             ``cli.py`` (lazy), ``tests/cli/test_imports.py``
==============================================  =============================================
"""

__version__ = "0.1.0"
