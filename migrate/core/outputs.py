"""Write output files so that a failure never leaves a partial file behind."""

from __future__ import annotations

import ctypes
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import BinaryIO

from migrate.core.mapped import FileRegion, copy_region

_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of the range, do not wait
_WRITEBACK_STEP = 8 << 20


def _load_sync_file_range():
    """libc's sync_file_range (Linux), which Python's os module does not expose."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


class _Writeback:
    """Ask the kernel to start writing each few MB of a large output as soon as it
    is in the page cache, so the disk works while the copy goes on and the final
    fsync has little left to wait for. Measured on the 528 MB VGG-16 weights:
    copy + fsync 0.25 s instead of 0.4-0.7 s. Best effort: where the call is
    missing or refused, the fsync alone does the work.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.started = 0

    def __call__(self) -> None:
        end = self.fh.tell()
        if _sync_file_range is None or end - self.started < _WRITEBACK_STEP:
            return
        self.fh.flush()
        _sync_file_range(self.fh.fileno(), self.started, end - self.started,
                         _SYNC_FILE_RANGE_WRITE)
        self.started = end


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(
    files: Mapping[str, bytes | Iterable[bytes | memoryview | FileRegion]],
) -> None:
    """Write every file to a temporary name beside it, then rename all of them.

    If anything fails before the renames, no target file is touched and the
    temporaries are removed.
    """
    temps: dict[str, str] = {}
    try:
        for path, data in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=directory)
            temps[path] = tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            with os.fdopen(fd, "wb") as fh:
                if isinstance(data, bytes | bytearray | memoryview):
                    fh.write(data)
                else:  # streamed in pieces (e.g. weights straight from their arrays)
                    writeback = _Writeback(fh)
                    for chunk in data:
                        if isinstance(chunk, FileRegion):
                            fh.flush()
                            copy_region(chunk, fh.fileno(), after_piece=writeback)
                        else:
                            fh.write(chunk)
                            writeback()
                fh.flush()
                os.fsync(fh.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
