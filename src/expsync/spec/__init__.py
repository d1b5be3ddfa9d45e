"""spec stage (filled in by its issue)."""
