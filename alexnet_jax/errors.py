"""The project's one error type for bad input, and how a caught error is quoted in its line.

Bad input (a config field, a file, a batch size, a damaged checkpoint, a busy workdir) raises
`InputError` with a message that names the problem and the fix; the entry points (cli.py) print
it as one line and exit 2. Every other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input the user can fix; the message is one line naming the field or file and the fix.

    A `ValueError`, so code and tests that catch `ValueError` keep working.
    """


class MissingFileError(InputError, FileNotFoundError):
    """A file or directory the user named (or must provide) is missing; also FileNotFoundError."""


class MissingPackageError(InputError, ImportError):
    """An optional package a chosen format needs is not installed; also an ImportError."""


def one_line(e: BaseException) -> str:
    """A caught exception's message for an InputError: one line, at most 160 characters."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    text = " ".join(text.split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."
