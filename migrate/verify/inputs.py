"""Arrays a user gives for verification: sample inputs (--input) and the outputs the
original framework recorded (--expected)."""

from __future__ import annotations

import os

import numpy as np

from migrate.core.errors import MigrateError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff")


def load_arrays(path: str) -> list[np.ndarray]:
    """The arrays of one file, in order.

    .npy (one array, never unpickled), .npz (every array, in stored order), an image
    (1x3xHxW RGB or 1x1xHxW gray, 0-255), an ONNX TensorProto (.pb, as ONNX's test
    data stores inputs and outputs), or a data file a reader knows (a Torch7 tensor or
    table of tensors, binary or ascii)."""
    if not os.path.isfile(path):
        raise UsageError("file not found", file=path)
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            return [np.load(path, allow_pickle=False)]  # never unpickle objects
        except (ValueError, EOFError, OSError, TypeError) as exc:
            raise UsageError(f"not a numeric .npy array ({exc})", file=path) from None
    if lower.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                return [archive[k] for k in archive.files]
        except (ValueError, EOFError, OSError, TypeError) as exc:
            raise UsageError(f"not a numeric .npz archive ({exc})", file=path) from None
    if lower.endswith(IMAGE_SUFFIXES):
        return [_image(path)]
    if lower.endswith(".pb"):
        return [_tensor_proto(path)]
    from migrate.core.detect import claim
    from migrate.core.registry import READERS

    found = claim(path)
    spec = READERS.get(found.format) if found else None
    loader = getattr(spec.load(), "load_arrays", None) if spec else None
    if loader is None:
        raise UsageError("give arrays as .npy, .npz, an image, an ONNX TensorProto (.pb) or "
                         "a Torch7 tensor file (.t7)", file=path)
    try:
        return loader(path)
    except MigrateError as exc:
        raise exc.with_file(path) from None


def load_input(path: str) -> np.ndarray:
    """One input array (float32 unless the file holds integers)."""
    arrays = load_arrays(path)
    if len(arrays) != 1:
        raise UsageError(f"holds {len(arrays)} arrays; give one --input per model input",
                         file=path)
    return _numeric(arrays[0], path)


def load_inputs(paths: list[str]) -> list[np.ndarray]:
    """--input files: one per model input, or one file holding a table of them."""
    arrays = [a for p in paths for a in load_arrays(p)]
    return [_numeric(a, ", ".join(paths)) for a in arrays]


def load_expected(paths: list[str]) -> list[np.ndarray]:
    arrays = [a for p in paths for a in load_arrays(p)]
    return [_numeric(a, ", ".join(paths)) for a in arrays]


def _numeric(array: np.ndarray, path: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind in "iub":
        return array
    if array.dtype.kind not in "f":
        raise UsageError(f"holds {array.dtype} values, not numbers", file=path)
    return array.astype(np.float32, copy=False)


def _image(path: str) -> np.ndarray:
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


def _tensor_proto(path: str) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    try:
        with open(path, "rb") as fh:
            tensor = onnx.TensorProto.FromString(fh.read())
        array = numpy_helper.to_array(tensor)
    except Exception:
        raise UsageError("not an ONNX TensorProto (.pb) file", file=path) from None
    return np.array(array)
