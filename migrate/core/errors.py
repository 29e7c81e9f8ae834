"""The project's own error types.

Every failure a user can cause (bad file, unsupported layer, bad option) is a
`MigrateError`; the command line prints it as one line `file: where: what`.
"""

from __future__ import annotations


class MigrateError(Exception):
    """A failure with a location a user can act on."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.where = where

    def with_file(self, file: str) -> MigrateError:
        if self.file is None:
            self.file = file
        return self

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.where) if p]
        parts.append(self.message)
        return ": ".join(parts)


class CorruptFileError(MigrateError):
    """The file is not a well-formed file of its format."""


class TruncatedFileError(CorruptFileError):
    """The file ends before the data it declares."""


class UnsupportedError(MigrateError):
    """Well-formed input that uses something we cannot convert."""


class UnsupportedModulesError(UnsupportedError):
    """One or more module classes have no converter; lists every occurrence."""

    def __init__(self, occurrences: list[tuple[str, str]], *, file: str | None = None,
                 kind: str = "module class(es)"):
        # occurrences: (module path, class name); kind: what a class is in the source format
        self.occurrences = occurrences
        classes = sorted({cls for _, cls in occurrences})
        where = ", ".join(f"{path} ({cls})" for path, cls in occurrences)
        super().__init__(f"unsupported {kind} {', '.join(classes)} at {where}", file=file)


class TooLargeError(MigrateError):
    """The file declares more data than the configured limit allows."""


class ConversionError(MigrateError):
    """A module or op could not be expressed in the target format."""


class VerificationError(MigrateError):
    """The converted model does not reproduce the source model's numbers."""


class UsageError(MigrateError):
    """Bad command-line arguments."""
