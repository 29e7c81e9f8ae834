"""Common graph -> STEM_savedmodel/ (TensorFlow SavedModel, serving_default) + STEM.json."""

from __future__ import annotations

import os

import onnx_ir as ir

from migrate.core.errors import ConversionError, MigrateError
from migrate.core.formats import tensorflow as sidecar
from migrate.core.model import WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.writers.tensorflow.target import (
    keep_layout,
    layout_notes,
    lower_model,
    sidecar_bytes,
    sidecar_content,
)


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    program = lower_model(model, options)
    sidecar.quiet_tensorflow()
    from migrate.writers.tensorflow import tf_builder  # TensorFlow: only for this target

    for op in program.ops:
        if not tf_builder.supported(op.kind):
            raise ConversionError(f"{op.layer} ({op.cls}): {op.kind.lower()} has no "
                                  "TensorFlow mapping")
    keep = keep_layout(options)
    notes = layout_notes(program, keep)
    paths = {"savedmodel": os.path.join(out_dir, f"{stem}_savedmodel"),
             "json": os.path.join(out_dir, f"{stem}.json")}
    try:
        built = tf_builder.SavedModelBuild(program)
        built.save(paths["savedmodel"])
    except (MigrateError, MemoryError):
        raise
    except Exception as exc:  # TensorFlow's own failure while tracing or saving
        raise ConversionError(f"TensorFlow could not build the SavedModel: "
                              f"{type(exc).__name__}: {exc}"[:500]) from exc
    data = sidecar_content(program, "tf", paths["savedmodel"], keep, {
        "function": tf_builder.FUNCTION,
        "variables": built.variables,
    })
    # the TensorFlow graph's tensor names stand for the lowered tensors' names
    for entry in [*data["inputs"], *data["outputs"], *data["layers"].values()]:
        entry["tensor"] = built.tensor_names.get(entry["tensor"], entry["tensor"])
    for entry, key in zip(data["inputs"], built.input_keys, strict=True):
        entry["key"] = key
    for entry, key in zip(data["outputs"], built.output_keys, strict=True):
        entry["key"] = key
    write_atomically({paths["json"]: sidecar_bytes(data)})
    return WriteResult(paths, notes)


def is_savedmodel(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def recognize(paths: list[str]) -> dict[str, str] | None:
    """Our sidecar (given, or beside a given SavedModel folder) and its SavedModel."""
    found = sidecar.find(paths, "tf")
    if found is None:
        return None
    json_path, data = found
    folders = [p for p in paths if is_savedmodel(p)]
    model = folders[0] if folders else sidecar.model_path(json_path, data)
    if not is_savedmodel(model):
        return None
    return {"savedmodel": model, "json": json_path}
