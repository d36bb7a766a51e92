"""User errors vs bugs.

An :class:`EdgekitError` is something the user can fix (a missing file, a wrong option): the CLI prints its
one-line message and exits with code 2. Anything else is a bug and keeps its traceback.
"""


class EdgekitError(Exception):
    """A user-facing error: one line that says what went wrong and what to do next."""

    exit_code = 2
