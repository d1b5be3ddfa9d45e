"""Regenerate the diagnostic-code tables in README.md from expsync.diagnostics.CODES.

    .venv/bin/python scripts/readme_codes.py      (a test fails when README and CODES differ)
"""

from __future__ import annotations

import re
from pathlib import Path

from expsync.diagnostics import CODES

GROUPS = {
    "E1": "Syntax and schema",
    "E2": "Semantics (offline, across all files)",
    "E3": "State machine and edit rules (plan)",
    "E4": "Secrets",
    "E5": "Drift and ownership (plan)",
    "W3": "Warnings on routing (never change the exit code)",
    "W4": "Secret warnings (never change the exit code)",
    "W5": "Warnings (never change the exit code)",
}


def table() -> str:
    out, cur = [], None
    for code, info in CODES.items():
        if code[:2] != cur:
            cur = code[:2]
            out += ["", f"**{cur}xx: {GROUPS[cur]}**", "", "| code | meaning | hint |", "|---|---|---|"]
        out.append(f"| `{code}` | {info.title} | {info.hint} |")
    return "\n".join(out) + "\n"


def main() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text()
    new = re.sub(r"(<!-- codes:start -->\n).*?(<!-- codes:end -->)", lambda m: m.group(1) + table() + "\n" + m.group(2),
                 text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
