"""Sample inputs given by the user: .npy arrays or image files."""

from __future__ import annotations

import os

import numpy as np

from migrate.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")


def load_input(path: str) -> np.ndarray:
    """A float32 array: .npy as stored; an image as 1x3xHxW RGB (or 1x1xHxW gray), 0-255."""
    if not os.path.isfile(path):
        raise UsageError("input file not found", file=path)
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            array = np.load(path, allow_pickle=False)  # never unpickle objects
            return np.asarray(array, dtype=np.float32)
        except (ValueError, EOFError, OSError, TypeError) as exc:
            raise UsageError(f"not a numeric .npy array ({exc})", file=path) from None
    if lower.endswith(IMAGE_SUFFIXES):
        try:
            import cv2
        except ImportError:
            raise UsageError("reading images needs OpenCV: pip install "
                             "'torch7-migrate[images]'", file=path) from None
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise UsageError("not a readable image", file=path)
        if image.ndim == 2:
            return image.astype(np.float32)[None, None]
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)  # OpenCV reads BGR
        return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    raise UsageError("input must be a .npy array or an image file", file=path)
