"""plan stage (filled in by its issue)."""
