"""Same plan, same string: renders are byte-identical across calls and across rebuilt plans."""

from __future__ import annotations

import pytest

from expsync.render.json import render_json
from expsync.render.markdown import render_markdown
from expsync.render.text import render_text
from tests.render import plans

RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
@pytest.mark.parametrize("name", sorted(plans.ALL))
def test_same_plan_renders_identically(name: str, fmt: str) -> None:
    render = RENDERERS[fmt]
    first, second = plans.ALL[name](), plans.ALL[name]()
    assert first == second
    assert render(first) == render(first) == render(second)


def test_large_plan_renders_identically_in_every_format() -> None:
    a, b = plans.hot_swaps(50), plans.hot_swaps(50)
    for render in RENDERERS.values():
        assert render(a) == render(b)
