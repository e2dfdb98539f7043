"""The error every config check raises; its own module so that each part of the config can raise it."""


class ConfigError(ValueError):
    """A config key is missing, unknown or has a bad value; the message names the key."""
