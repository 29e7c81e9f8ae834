"""Package layout: the repository keeps readers/ and writers/ beside migrate/ (one
folder per data-flow stage); installed, they are the subpackages migrate.readers and
migrate.writers, so the wheel adds one top-level name only (see migrate/__init__.py
for the same mapping in a source checkout)."""

from setuptools import find_packages, setup

STAGES = ("readers", "writers")

packages = find_packages(include=["migrate", "migrate.*"])
for stage in STAGES:
    packages += [f"migrate.{name}" for name in find_packages(include=[stage, f"{stage}.*"])]

setup(
    packages=packages,
    package_dir={f"migrate.{stage}": stage for stage in STAGES},
)
