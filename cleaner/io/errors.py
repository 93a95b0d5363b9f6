"""The errors cxclean raises for a person to read, under one base class.

Every error a user can cause (a bad file, a bad setting, a folder that is not a scan output) is a
``CxcleanError``: the command line prints its message and exits with status 2, the same for every
command. Anything else is a bug and keeps its traceback.
"""


class CxcleanError(Exception):
    """An error a user can act on; the message names the file or setting and the reason."""


class ImageReadError(CxcleanError):
    """A file that could not be read as an image; carries the path and a reason a person understands."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UserInputError(CxcleanError, ValueError):
    """A setting, list or table given by the user that cannot be used (also a ``ValueError``, as before)."""
