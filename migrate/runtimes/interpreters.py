"""Finding the interpreter of a side runtime (a framework that only lives in another
Python, e.g. Caffe2 and Caffe on CPython 3.9)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence

from migrate.core.errors import VerificationError


@functools.cache
def imports(python: str, module: str) -> bool:
    """Whether `python` can import `module` (asked once per process)."""
    try:
        result = subprocess.run([python, "-I", "-c", f"import {module}"], capture_output=True,
                                timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def find_interpreter(explicit: str | None, module: str, env_var: str, launcher: str,
                     provisioned: Sequence[str]) -> str | None:
    """The side runtime's interpreter, or None when there is none. Looked for in this
    order: `explicit` (a command-line option: an error when it does not work), $env_var,
    `launcher` on PATH, where provisioning puts it."""
    if explicit:
        if not imports(explicit, module):
            raise VerificationError(f"{explicit} cannot import {module}")
        return explicit
    for candidate in (os.environ.get(env_var), shutil.which(launcher), *provisioned):
        if candidate and imports(candidate, module):
            return candidate
    return None
