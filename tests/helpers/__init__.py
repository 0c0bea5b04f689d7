"""Test helpers shared across test folders (import as `helpers.<module>`)."""
