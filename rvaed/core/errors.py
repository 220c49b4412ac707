"""The one exception type that user-facing code turns into a one-line message."""


class RvaedError(Exception):
    """A problem with the user's input (a file, a field, a message), explained in one line.

    The message names what was wrong and what was expected; the CLI prints it without a
    traceback and the daemon logs it and keeps playing.
    """
