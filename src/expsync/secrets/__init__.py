"""secrets stage (filled in by its issue)."""
