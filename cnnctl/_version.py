"""The version of cnnctl (read by pyproject.toml and recorded in every run's metrics.json)."""

__version__ = "0.1.0"
