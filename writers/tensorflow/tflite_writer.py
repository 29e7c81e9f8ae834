"""Common graph -> STEM.tflite (LiteRT flatbuffer, float32) + STEM.json."""

from __future__ import annotations

import os

import onnx_ir as ir

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
from migrate.writers.tensorflow.tflite_builder import build

MAGIC = b"TFL3"  # the flatbuffer file identifier, bytes 4-8


def is_tflite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8)[4:8] == MAGIC
    except OSError:
        return False


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    program = lower_model(model, options)
    keep = keep_layout(options)
    notes = layout_notes(program, keep)
    flatbuffer = build(program)
    paths = {"tflite": os.path.join(out_dir, f"{stem}.tflite"),
             "json": os.path.join(out_dir, f"{stem}.json")}
    data = sidecar_content(program, "tflite", paths["tflite"], keep)
    write_atomically({paths["tflite"]: flatbuffer, paths["json"]: sidecar_bytes(data)})
    return WriteResult(paths, notes)


def recognize(paths: list[str]) -> dict[str, str] | None:
    """A .tflite (by its flatbuffer identifier) with our sidecar, or the sidecar alone."""
    found = sidecar.find(paths, "tflite")
    if found is None:
        return None
    json_path, data = found
    model = sidecar.model_path(json_path, data)
    given = [p for p in paths if is_tflite(p)]
    if given:
        model = given[0]
    if not is_tflite(model):
        return None
    return {"tflite": model, "json": json_path}
