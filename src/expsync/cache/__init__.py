"""cache stage (filled in by its issue)."""
