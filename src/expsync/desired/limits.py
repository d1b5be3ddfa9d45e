"""Size limits of the desired state, importable without YAML or pydantic (the CLI's flag
defaults read them before a command decides to load anything)."""

from __future__ import annotations

from typing import Final

#: ``--max-file-size`` default: YAML files larger than this many bytes are refused (E106)
DEFAULT_MAX_FILE_SIZE: Final = 1024 * 1024
