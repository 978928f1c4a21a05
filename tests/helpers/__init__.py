"""Helpers for the project's own tests: molecule hosts, journals on failure."""
