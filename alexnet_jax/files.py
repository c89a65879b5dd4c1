"""Files written whole or not at all: under a temporary name, renamed over the target when done.

A crash, kill -9, full disk or power cut midway (the file is fsynced before the rename) leaves
an earlier file at the target whole; what is left behind is only `PATH.tmpPID`, which no reader
opens (prepare.py removes its own on a rerun).
`locked` keeps a directory to one live writer (a training run's workdir, prepare's output).
`save_arrays` / `npy_arrays`: prepare.py's shard format, .npy records one after another.
`no_space_is`: a full disk in a block is one line (shards, the run's logs).
"""

import contextlib
import errno
import fcntl
import json
import mmap
import os
import resource
import socket
import sys
from collections.abc import Iterator

import numpy as np

from alexnet_jax.errors import InputError

LOCK_FILE = "run.lock"


@contextlib.contextmanager
def replaced(path: str) -> Iterator[str]:
    """Yields a temporary path next to `path`: renamed to `path` if the block ends normally,
    removed if it raises. A missing directory is the caller's path, named in one line."""
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise InputError(
            f"cannot write {path}: the directory {parent} does not exist; create it or give "
            "another path"
        )
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        _fsync(tmp)  # the data on disk before the name: a power cut leaves old or new, whole
        os.replace(tmp, path)
        try:
            _fsync(parent)  # the rename itself
        except OSError as e:  # some network and FUSE filesystems cannot sync a directory
            if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_rows(path: str) -> list[dict]:
    """A run's metrics.jsonl rows; a last line cut short by a kill is left out."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # also a blank line
    return rows


def write_json(path: str, obj) -> None:
    with replaced(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)


@contextlib.contextmanager
def locked(directory: str, flag: str) -> Iterator[None]:
    """One live writer per directory: an flock on DIRECTORY/run.lock, released by the kernel
    when the process ends (kill -9 included), so it is never stale. A second writer fails in one
    line naming `flag` (the option that chose the directory, e.g. "--workdir") and the holder."""
    path = os.path.join(directory, LOCK_FILE)
    try:
        os.makedirs(directory, exist_ok=True)
        f = open(path, "a+")  # noqa: SIM115 (held for the block)
    except OSError as e:
        raise InputError(f"{flag}={directory} is not writable ({e.strerror})") from None
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise InputError(
                f"{flag}={directory} is in use by {holder}; wait for it, stop it, or use "
                f"another {flag}"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}")
        f.flush()
        yield
    finally:
        f.close()  # releases the lock


@contextlib.contextmanager
def no_space_is(message: str) -> Iterator[None]:
    """A full disk (ENOSPC) inside the block is InputError(message), one line; any other
    error keeps its traceback."""
    try:
        yield
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise InputError(message) from None


def save_arrays(path: str, arrays: list[np.ndarray]) -> None:
    """`arrays` as .npy records one after another in `path` (prepare.py's shards), whole or
    not at all; a full disk is one line."""
    full = (
        f"no space left on the device of {os.path.dirname(path)} while writing "
        f"{os.path.basename(path)}; free space (finished shards are kept, nothing "
        "half-written is read) and rerun the same command"
    )
    with no_space_is(full), replaced(path) as tmp, open(tmp, "wb") as f:
        for a in arrays:
            np.save(f, a, allow_pickle=False)


def npy_arrays(path: str) -> list[np.ndarray]:
    """The .npy arrays stored one after another in `path`: views of one read-only memory map,
    so a file holds one descriptor however many arrays it has."""
    out, end = [], os.path.getsize(path)
    with open(path, "rb") as f:
        whole = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if end else b""
        while f.tell() < end:
            try:
                version = np.lib.format.read_magic(f)
                read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                    version, np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read(f)
            except ValueError:
                raise InputError(
                    f"{path} is damaged; delete it and rerun `python -m alexnet_jax.prepare` "
                    "with the same config (it rewrites the missing shards)"
                ) from None
            offset = f.tell()
            nbytes = int(np.prod(shape)) * dtype.itemsize
            if offset + nbytes > end:
                raise InputError(f"{path} is truncated; delete it and rerun the prepare command")
            out.append(
                np.ndarray(shape, dtype, whole, offset) if nbytes else np.zeros(shape, dtype)
            )
            f.seek(offset + nbytes)
    if not out:
        raise InputError(f"{path} is empty; delete it and rerun the prepare command")
    return out


def allow_open_files(n: int, what: str, fix: str) -> None:
    """Raises this process's soft limit on open files (ulimit -n) towards its hard limit so
    that `n` more files fit beside the ~200 that JAX and Python hold; one line if they cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need, unlimited = n + 256, resource.RLIM_INFINITY
    if soft == unlimited or need <= soft:
        return
    if hard == unlimited or need <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == unlimited else hard, hard))
        return
    raise InputError(
        f"{what}: {n} open files are needed and this process may open {hard} (ulimit -Hn); "
        f"raise the limit (ulimit -n {need}, as root or in limits.conf), or {fix}"
    )
