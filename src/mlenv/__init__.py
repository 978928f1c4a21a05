"""mlenv: a complete, secure ML environment in one command."""

__version__ = "0.1.0"
