"""Errors that reach the user as one line."""


class DDSPMorphError(Exception):
    """A problem the user can fix (bad file, missing SoundFont, wrong config value): one line."""


class ConfigError(DDSPMorphError):
    """A config value of the wrong kind or out of range; the message names the key."""


class AudioFileError(DDSPMorphError):
    """An audio file that cannot be read; the message names the file."""
