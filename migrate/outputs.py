"""Write output files so that a failure never leaves a partial file behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping

from migrate.mapped import FileRegion, copy_region


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
                    for chunk in data:
                        if isinstance(chunk, FileRegion):
                            fh.flush()
                            copy_region(chunk, fh.fileno())
                        else:
                            fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
