"""Making bytes durable: fsync of files and directories, atomic replacement.

A file written with `atomic_write` is either absent or complete after a crash at
any moment (anti-pattern 6 of STYLE.md): the bytes go to a temporary file in the
same directory, which is fsynced, renamed over the target with ``os.replace`` and
the directory fsynced so that the rename itself survives a power loss.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Callable, Iterable, Union


def fsync_path(path: str) -> None:
    """fsyncs the file or directory at `path` (directories: best effort where the OS refuses)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError:
        if not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


def fsync_paths(paths: Iterable[str]) -> None:
    """fsyncs each existing path in `paths`, in order."""
    for p in paths:
        if os.path.exists(p):
            fsync_path(p)


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, Callable[[IO[bytes]], None]]) -> None:
    """Writes `data` (bytes, or a function writing into a binary file) to `path` so that a
    crash leaves either the old state or all of it. The temporary file (``.<name>.*.tmp``
    next to `path`, unique per call) is removed if writing fails."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_path(directory)


def check_writable(directory: str, what: str) -> None:
    """Raises PermissionError naming `what` unless a file can be created in `directory`."""
    probe = os.path.join(directory, f".ntkx-write-probe.{os.getpid()}")
    try:
        with open(probe, "wb") as f:
            f.write(b"\0")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(
            f"{what} {directory!r} is not writable ({e.strerror or e}); choose a writable store path") from None
