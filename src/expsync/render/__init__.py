"""render stage: ``Plan -> str``, one module per format. Renderers decide nothing.

* :mod:`expsync.render.text` - ``render_text(plan, *, color=False)``: the default,
  Terraform-like view for a terminal or a CI log.
* :mod:`expsync.render.json` - ``render_json(plan)``: a versioned wire format
  (``format_version``) with its own output models; also the file ``plan --out`` saves.
  ``json_schema()`` generates ``schemas/plan.schema.json``.
* :mod:`expsync.render.markdown` - ``render_markdown(plan)``: one sticky pull-request comment
  that stays under 60,000 characters by dropping detail, never by cutting a table.
* :mod:`expsync.render.diagnostics` - diagnostics alone (validate, annotations).

The format is chosen once, in ``cli.py``. A renderer only reads the :class:`~expsync.plan.Plan`
it is given: no database, Redis, secret store, environment or clock. Same plan, same string.

Per-op output goes through ``functools.singledispatch`` registries (one function per format,
one registration per op class) whose base implementation raises ``NotImplementedError``;
``tests/render/test_registry.py`` checks every op type of ``expsync.plan.ops.Op`` is handled.

No renderer can print a secret: ops carry :class:`~expsync.model.KeyChange` and a secret
*reference* (``env:NAME``), never a key. This module holds the few helpers the formats share
(counts, the summary line, value and share formatting) so they say the same thing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The shared helpers live in expsync.render.common and are loaded on first use: they import
# the planner's types, and `expsync validate` renders diagnostics (expsync.render.diagnostics)
# without importing plan/ at all.
if TYPE_CHECKING:
    from expsync.render.common import (
        HEADLINE,
        Summary,
        changed_experiments,
        format_percent,
        format_share,
        format_value,
        headline_action,
        key_change_text,
        reason_text,
        share_rows,
        shares_unchanged,
        summarize,
        summary_line,
    )

__all__ = [
    "HEADLINE",
    "Summary",
    "changed_experiments",
    "format_percent",
    "format_share",
    "format_value",
    "headline_action",
    "key_change_text",
    "reason_text",
    "share_rows",
    "shares_unchanged",
    "summarize",
    "summary_line",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("expsync.render.common"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
