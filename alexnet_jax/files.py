"""Files written whole or not at all: under a temporary name, renamed over the target when done.

A crash, kill -9 or full disk midway leaves an earlier file at the target whole; what is left
behind is only `PATH.tmpPID`, which no reader opens (prepare.py removes its own on a rerun).
"""

import contextlib
import json
import os
from collections.abc import Iterator


@contextlib.contextmanager
def replaced(path: str) -> Iterator[str]:
    """Yields a temporary path next to `path`: renamed to `path` if the block ends normally,
    removed if it raises."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj) -> None:
    with replaced(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
