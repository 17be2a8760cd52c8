"""The one exception type the command line turns into a one-line error and a non-zero exit."""


class WeaklocError(Exception):
    """A problem the user can fix (bad input, missing file, bad config).

    The message names the file or key and the problem, on one line.
    """
