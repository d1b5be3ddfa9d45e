"""render stage (filled in by its issue)."""
