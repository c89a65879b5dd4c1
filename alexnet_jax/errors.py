"""The project's one error type for bad input, and nothing else.

Bad input (a config field, a file, a batch size, a damaged checkpoint, a busy workdir) raises
`InputError` with a message that names the problem and the fix; the entry points print it as
one line and exit non-zero. Every other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input the user can fix; the message is one line naming the field or file and the fix.

    A `ValueError`, so code and tests that catch `ValueError` keep working.
    """
