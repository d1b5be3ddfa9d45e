"""apply stage (filled in by its issue)."""
