"""Common graph -> `STEM.py` (a readable nn.Module), `STEM.safetensors` (its state_dict),
`STEM.json` (inputs, outputs, source, layer map) and, with `--pytorch-export`, `STEM.pt2`
(torch.export of the generated module)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx_ir as ir

from migrate import __version__
from migrate.core.errors import ConversionError, UsageError
from migrate.core.model import SourceModel, WriteOptions, WriteResult
from migrate.core.outputs import write_atomically
from migrate.writers.pytorch import safetensors_out
from migrate.writers.pytorch.program import Program, file_text, generate

META_FORMAT = "torch7-migrate pytorch module"
META_VERSION = 1


def output_paths(out_dir: str, stem: str) -> dict[str, str]:
    return {"code": os.path.join(out_dir, f"{stem}.py"),
            "weights": os.path.join(out_dir, f"{stem}.safetensors"),
            "meta": os.path.join(out_dir, f"{stem}.json")}


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def source_hashes(source: SourceModel | None) -> dict[str, str]:
    return {p: _sha256(p) for p in (source.paths if source else [])}


def _source_entry(source: SourceModel | None, hashes: dict[str, str]) -> dict:
    if source is None:
        return {}
    entry: dict = {"format": source.format, "description": source.description,
                   "layers": source.layer_count, "layer_word": source.layer_word}
    if source.paths:
        entry["files"] = [{"name": os.path.basename(p), "sha256": hashes[p],
                           "bytes": os.path.getsize(p)} for p in source.paths]
    if source.fixups:
        entry["fixups"] = list(source.fixups)
    return entry


def meta(program: Program, stem: str, source: SourceModel | None, code: bytes,
         hashes: dict[str, str]) -> dict:
    return {"format": META_FORMAT, "format_version": META_VERSION,
            "tool": f"torch7-migrate {__version__}", "code": f"{stem}.py",
            # the layer map names lines of this exact code
            "code_sha256": hashlib.sha256(code).hexdigest(),
            "weights": f"{stem}.safetensors", "class": "Model",
            "source": _source_entry(source, hashes), "inputs": program.inputs,
            "outputs": program.outputs, "layers": program.layers}


def readable_json(data: dict) -> str:
    """Indented JSON with every innermost list or object on one line when it fits."""
    text = json.dumps(data, indent=1)
    innermost = re.compile(r"([\[{])\n(\s*)([^\[\]{}]*?)\n\s*([\]}])")

    def join(match: re.Match) -> str:
        items = " ".join(line.strip() for line in match.group(3).splitlines())
        one_line = f"{match.group(1)}{items}{match.group(4)}"
        return one_line if len(one_line) + len(match.group(2)) <= 100 else match.group(0)

    while True:
        joined = innermost.sub(join, text)
        if joined == text:
            return text + "\n"
        text = joined


def write_program(program: Program, out_dir: str, stem: str,
                  source: SourceModel | None = None) -> dict[str, str]:
    paths = output_paths(out_dir, stem)
    info = {"format": "pt", "source": "torch7-migrate"}
    code = file_text(program, os.path.basename(paths["weights"])).encode()
    # The source files are hashed on a second core while the weights are written (both
    # wait on the kernel, not the interpreter): the JSON, written last, waits for it.
    with ThreadPoolExecutor(1) as pool:
        hashes = pool.submit(source_hashes, source)

        def meta_bytes():
            yield readable_json(meta(program, stem, source, code, hashes.result())).encode()

        write_atomically({
            paths["code"]: code,
            paths["weights"]: safetensors_out.chunks(program.state, info),
            paths["meta"]: meta_bytes(),
        })
    return paths


def instantiate(program: Program):
    """The generated module, in memory, with its weights (no file written or imported):
    for torch.export. Tensors share the arrays' memory where they are writable."""
    try:
        import torch
    except ImportError:
        raise UsageError("exporting the generated module needs PyTorch: "
                         "pip install 'torch7-migrate[torch]'") from None

    namespace = types.ModuleType("migrate_generated_model")
    namespace.__file__ = "<generated>"
    exec(compile(file_text(program, "weights.safetensors"), "<generated model>", "exec"),
         namespace.__dict__)
    with torch.device("meta"):
        module = namespace.Model()
    state = {}
    for name, array in program.state.items():
        array = np.asarray(array)
        if not array.flags["C_CONTIGUOUS"] or not array.flags["WRITEABLE"]:
            array = np.array(array)  # torch wants writable memory it can own
        state[name] = torch.from_numpy(array)
    module.load_state_dict(state, strict=True, assign=True)
    return module.eval()


def export_program(program: Program, path: str) -> None:
    """`torch.export` of the generated module, saved as an ExportedProgram (.pt2); the
    batch dimension stays dynamic where the module allows it."""
    module = instantiate(program)  # (a clear error when PyTorch is missing)
    import torch

    arrays = program.example_inputs()
    examples = tuple(torch.from_numpy(a) for a in arrays)
    dynamic = None
    if any(spec["batch"] == "free" for spec in program.inputs):
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} if spec["batch"] == "free" else None
                        for spec in program.inputs)
        # torch.export fixes every dimension of size 1: trace a batch of two
        examples = tuple(torch.from_numpy(np.concatenate([a, a]) if spec["batch"] == "free"
                                          else a)
                         for a, spec in zip(arrays, program.inputs, strict=True))
    exported = None
    if dynamic is not None:
        try:
            exported = torch.export.export(module, examples, dynamic_shapes=dynamic)
        except Exception:  # e.g. an op that fixes the batch size: export it static
            exported = None
    if exported is None:
        try:
            exported = torch.export.export(module, tuple(torch.from_numpy(a) for a in arrays))
        except Exception as exc:
            raise ConversionError(f"torch.export failed on the generated module: "
                                  f"{type(exc).__name__}: {exc}"[:500]) from None
    partial = path[:-len(".pt2")] + ".partial.pt2"  # torch.export.save wants .pt2
    try:
        torch.export.save(exported, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def write(model: ir.Model, out_dir: str, stem: str, options: WriteOptions) -> WriteResult:
    program = generate(model, options.source)
    files = write_program(program, out_dir, stem, options.source)
    if options.extra.get("pytorch_export"):
        files["program"] = os.path.join(out_dir, f"{stem}.pt2")
        export_program(program, files["program"])
    return WriteResult(files, program.notes)


def recognize(paths: list[str]) -> dict[str, str] | None:
    """STEM.py + STEM.safetensors + STEM.json as this writer wrote them (any order), and
    the STEM.pt2 of --pytorch-export if given too."""
    if len(paths) not in (3, 4):
        return None
    found: dict[str, str] = {}
    for path in paths:
        with open(path, "rb") as fh:
            head = fh.read(4096)
        if head[:1] == b"{" and META_FORMAT.encode() in head:
            found["meta"] = path
        elif b"class Model(nn.Module)" in _read_all_small(path, head):
            found["code"] = path
        elif len(head) >= 9 and head[8:9] == b"{":
            found["weights"] = path
        elif head[:2] == b"PK":  # a zip: torch.export.save's archive
            found["program"] = path
    complete = {"code", "weights", "meta"} <= set(found)
    return found if complete and len(found) == len(paths) else None


def _read_all_small(path: str, head: bytes, limit: int = 1 << 22) -> bytes:
    if b"import torch" not in head:
        return b""
    with open(path, "rb") as fh:
        return fh.read(limit)
