"""Regenerate the README's list of supported Torch7 modules from the converter registry.

    python tools/update_readme.py
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from migrate.readers.torch7.reader import supported_module_line  # noqa: E402


def main() -> None:
    path = os.path.join(ROOT, "README.md")
    text = open(path).read()
    head, rest = text.split("## Supported Torch7 modules", 1)
    section, *tail = rest.split("\n## ", 1)
    section = re.sub(r"^`.*$", supported_module_line(), section, count=1, flags=re.M)
    text = head + "## Supported Torch7 modules" + section + ("\n## " + tail[0] if tail else "")
    open(path, "w").write(text)


if __name__ == "__main__":
    main()
