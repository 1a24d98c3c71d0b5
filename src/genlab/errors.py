"""Errors meant for people: each message names what went wrong and how to fix it.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class GenlabError(Exception):
    """Base of every user-facing error."""


class ConfigError(GenlabError, ValueError):
    """A config file, key or value is wrong."""


class DataError(GenlabError):
    """Data files are missing, corrupt or of the wrong kind."""


class RunError(GenlabError):
    """A run folder or checkpoint is missing or unusable."""


class TrainingDiverged(GenlabError):
    """A loss became NaN or Inf; the last good checkpoint is kept."""


class DownloadError(DataError, OSError):
    """A file could not be fetched or failed its checksum.

    Also an OSError, as network failures (urllib's URLError, timeouts) are, so that code
    trying mirrors in turn catches it like any other I/O failure.
    """
