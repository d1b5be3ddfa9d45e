"""state stage (filled in by its issue)."""
