"""Limits on constants that converters compute from a module's fields (not its stored
tensors): a damaged size field must fail clearly, not allocate gigabytes."""

from migrate.core.errors import TooLargeError

MAX_COMPUTED_CONSTANT_BYTES = 1 << 30


def check_computed_constant(elements: int, itemsize: int, what: str) -> None:
    nbytes = int(elements) * itemsize
    if nbytes > MAX_COMPUTED_CONSTANT_BYTES:
        raise TooLargeError(f"{what} would take {nbytes / 1e9:,.1f} GB (over "
                            f"{MAX_COMPUTED_CONSTANT_BYTES >> 30} GiB): a damaged size field?")
