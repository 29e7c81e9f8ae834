"""Project hygiene that CI enforces: lint-clean code, README commands that are true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed (pip install .[test])")
    result = subprocess.run([ruff, "check", ROOT], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _readme_commands() -> list[str]:
    text = open(os.path.join(ROOT, "README.md")).read()
    first_screen = "\n".join(text.splitlines()[:40])
    return re.findall(r"^\s*(pip install .*)$", first_screen, flags=re.M)


def test_ci_runs_exactly_the_readme_test_command():
    commands = _readme_commands()
    test_commands = [c for c in commands if "pytest" in c]
    assert len(test_commands) == 1
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert test_commands[0].strip() in [line.strip() for line in ci.splitlines()]


def test_readme_example_file_is_shipped():
    (convert,) = [c for c in _readme_commands() if "migrate " in c]
    example = re.search(r"migrate (\S+\.t7)", convert).group(1)
    assert os.path.isfile(os.path.join(ROOT, example))


def test_readme_lists_exactly_the_supported_modules():
    from migrate.readers.torch7.reader import supported_module_line

    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("## Supported Torch7 modules", 1)[1].split("\n## ", 1)[0]
    module_list = [line for line in section.splitlines() if line.startswith("`")]
    expected = supported_module_line()
    assert module_list == [expected], "run: python tools/update_readme.py"


def test_every_package_folder_is_a_package():
    """setup.py installs regular packages only: a folder of modules without __init__.py
    would be left out of the wheel (the source checkout would still import it)."""
    missing = []
    for top in ("migrate", "readers", "writers"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if any(f.endswith(".py") for f in files) and "__init__.py" not in files:
                missing.append(os.path.relpath(folder, ROOT))
    assert not missing, missing


def test_the_installed_package_has_every_module(tmp_path):
    """What `pip install .` builds: the wheel's file list."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                             str(tmp_path), ROOT], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    import zipfile

    (wheel,) = [p for p in os.listdir(tmp_path) if p.endswith(".whl")]
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__")) and d not in (
            "tests", "bench", "tools", "fixtures", "examples", "build", "out")]
        top = os.path.relpath(folder, ROOT).split(os.sep)[0]
        for name in files:
            if not name.endswith((".py", ".sh", ".proto", ".txt")) or top not in (
                    "migrate", "readers", "writers"):
                continue
            relative = os.path.relpath(os.path.join(folder, name), ROOT)
            installed = relative if top == "migrate" else f"migrate/{relative}"
            assert installed in names, f"{relative} is not in the wheel"
