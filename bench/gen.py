"""Generate a large desired state: N experiment files of about SIZE bytes each (shared by benches)."""

from __future__ import annotations

import json
from pathlib import Path

STATUSES = ("draft", "active", "paused", "completed")


def experiment_yaml(i: int, *, variants: int = 3, pad: int = 11500) -> str:
    status = STATUSES[i % 4]
    lines = [
        "# yaml-language-server: $schema=../schemas/experiment-2026-06.schema.json",
        f"key: bench-{i:05d}",
        f"public_model_id: partner/bench-{i:05d}",
        f"name: Bench experiment {i}",
        f"description: {'generated for the benchmark ' * 2}",
        f"status: {status}",
        f"archived: {'true' if status == 'completed' else 'false'}",
        "variants:",
    ]
    filler = "x" * max(0, pad // (variants * 4))
    for v in range(variants):
        lines += [
            f"  - label: v{v}",
            f"    weight: {v + 1}",
            "    upstream:",
            f"      internal_id: model-{i}-{v}",
            "      base_url: https://api.partner.example/v1",
            "      extra_body:",
            f"        temperature: 0.{v}",
            f"        note: {json.dumps(filler)}",
            "        tags: [a, b, c]",
            "      remove_from_body: [reasoning_effort]",
            f"    api_key: env:BENCH_KEY_{v}",
        ]
    return "\n".join(lines) + "\n"


def write_corpus(root: Path, n: int, **kw: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(n):
        text = experiment_yaml(i, **kw)
        (root / f"bench-{i:05d}.yaml").write_text(text)
        total += len(text)
    return total
