"""One exception type for every file cxclean cannot read, so callers catch one thing."""


class ImageReadError(Exception):
    """A file that could not be read as an image; carries the path and a reason a person understands."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
