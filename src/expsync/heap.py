"""The garbage collector's policy for a short-lived command.

``plan`` and ``apply`` build two large, long-lived structures - the desired state (YAML files)
and the actual state (database rows) - that hold no reference cycles and live until the process
exits. CPython's cyclic collector would otherwise run dozens of times while they are built
(every 700 allocations) and then rescan them in every older-generation collection, for nothing:
the shared floor parses with the collector off for the same reason.

:func:`long_lived` runs a block with the collector paused. In a command's own process
(:func:`short_lived_process`, called by ``expsync.cli.main``) it also moves every object alive
when the block ends to the permanent generation (``gc.freeze()``), which later collections
skip. Objects that become garbage after that are reference-counted as usual; only cycles among
frozen objects would be kept until exit, and these structures have none. A long-running host
(the test suite, an embedder) keeps the default: pause only, nothing frozen.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


_freeze = False


def short_lived_process() -> None:
    """This process runs one command and exits: :func:`long_lived` may freeze what it built."""
    global _freeze
    _freeze = True


@contextmanager
def long_lived() -> Iterator[None]:
    """Pause the cyclic collector for the block; in a short-lived process, also freeze what is
    alive when it ends (even on an error: the process is about to report it and exit)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _freeze:
            gc.freeze()
        if was_on:
            gc.enable()


__all__ = ["long_lived", "short_lived_process"]
