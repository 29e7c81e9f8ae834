"""Write writers/caffe2/operators-cpu.txt: the operators the real Caffe2 runtime registers.

    python3 tools/caffe2_operators.py       (needs the Caffe2 side runtime)

`migrate check-mobile` takes its operator set from this list (minus training, ATen
and GPU operators); tests/test_caffe2_mobile.py checks it against the runtime.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from migrate.runtimes.caffe2.side import find_caffe2_python  # noqa: E402

LIST = os.path.join(ROOT, "writers", "caffe2", "operators-cpu.txt")
HEADER = ("# Operators registered in the genuine Caffe2 CPU runtime (torch 1.10.2), one per line:\n"
          "# workspace.RegisteredOperators(), written by tools/caffe2_operators.py.\n")


def registered_operators(python: str) -> list[str]:
    code = ("from caffe2.python import workspace\n"
            "print('\\n'.join(sorted(workspace.RegisteredOperators())))")
    out = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def main() -> int:
    python = find_caffe2_python()
    if python is None:
        print("the Caffe2 side runtime is not installed: migrate runtimes install caffe2")
        return 2
    ops = registered_operators(python)
    with open(LIST, "w") as fh:
        fh.write(HEADER + "\n".join(ops) + "\n")
    print(f"{len(ops)} operators -> {LIST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
