"""Configuration: YAML files validated against the shipped JSON Schemas."""

from maildesk.config.errors import ConfigError, ConfigProblem
from maildesk.config.model import Settings, load_settings

__all__ = ["ConfigError", "ConfigProblem", "Settings", "load_settings"]
