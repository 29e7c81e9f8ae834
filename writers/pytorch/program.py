"""Common graph -> the text of STEM.py, its state_dict arrays and the layer map.

The generated file is standalone: it imports torch (and safetensors in its loader), never
this project, so it keeps working wherever PyTorch does.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

import migrate.writers.pytorch.converters  # noqa: F401  (registers every op converter)
from migrate import __version__
from migrate.core.errors import ConversionError, MigrateError
from migrate.core.graph import node_origin, static_shape
from migrate.core.model import InputInfo, SourceModel
from migrate.writers.pytorch.codegen import CodeGen, Located
from migrate.writers.pytorch.names import identifier
from migrate.writers.pytorch.registry import lookup

INDENT = "        "  # statements inside the methods of class Model
LINE_LENGTH = 100


@dataclass
class Program:
    """A generated module, before it is written."""

    code: str
    state: dict[str, np.ndarray]  # the state_dict, in the order the layers are declared
    layers: dict[str, dict]  # source layer path -> where forward computes its output
    inputs: list[dict]
    outputs: list[dict]
    arguments: list[str]  # forward's parameter names
    notes: list[str] = field(default_factory=list)

    def example_inputs(self) -> list[np.ndarray]:
        """Inputs of the traced shapes (zeros; integer inputs take their smallest value)."""
        found = []
        for spec in self.inputs:
            low = (spec.get("value_range") or [0, 0])[0]
            found.append(np.full(spec["shape"], low, dtype=np.dtype(spec["dtype"])))
        return found


def _input_infos(model: ir.Model, source: SourceModel | None) -> list[InputInfo]:
    known = {i.name: i for i in (source.inputs if source else [])}
    infos = []
    for value in model.graph.inputs:
        info = known.get(value.name)
        if info is None:
            dtype = value.dtype.numpy().name if value.dtype is not None else "float32"
            shape = list(static_shape(value))
            info = InputInfo(value.name, shape, dtype, "NCHW" if len(shape) == 4 else "")
        infos.append(info)
    return infos


def _batch_free(info: InputInfo) -> bool:
    """Whether the first dimension of an input may be a batch: images (NCHW) and feature
    matrices are; the generated code then keeps it free where every op lets it through
    (CodeGen.batch_is_free)."""
    if info.layout:
        return info.layout.startswith("N")
    return len(info.shape) >= 2


def generate(model: ir.Model, source: SourceModel | None = None) -> Program:
    """Generate the module for a common graph (nothing is written)."""
    infos = _input_infos(model, source)
    names = [identifier(i.name, "input") for i in infos]
    g = CodeGen(model, names, [_batch_free(i) for i in infos])
    for index, node in enumerate(g.nodes):
        convert = lookup(node.op_type) if node.domain in ("", "ai.onnx") else None
        where = node_origin(node) or f"node {node.name} ({node.op_type})"
        if convert is None:
            raise ConversionError(f"the PyTorch writer has no equivalent for the ONNX op "
                                  f"{node.op_type}", where=where)
        g.begin(index, node)
        try:
            convert(g, node)
        except MigrateError as exc:
            exc.where = exc.where or where
            raise
        except MemoryError:
            raise
        except Exception as exc:  # a converter met a case it did not expect
            raise ConversionError(f"the PyTorch writer failed on {node.op_type}: "
                                  f"{type(exc).__name__}: {exc}"[:500], where=where) from exc
    returned = []
    for value in model.graph.outputs:
        loc = g.located(value)
        if loc is None or loc.var is None:
            raise ConversionError(f"output {value.name} is not computed by any layer")
        returned.append(loc.var)
    g.free_inputs = [b and g.batch_is_free() for b in g.batched_inputs]
    code, lines = _assemble(g, source, infos, returned)
    layers = {path: _layer_entry(g, g.located(value), lines)
              for path, value in g.layer_values().items() if g.located(value) is not None}
    inputs = [_input_entry(info, batched) for info, batched in zip(infos, g.free_inputs,
                                                                    strict=True)]
    outputs = [{"name": v.name, "shape": _dims(v),
                "dtype": v.dtype.numpy().name if v.dtype is not None else "float32"}
               for v in model.graph.outputs]
    return Program(code, g.state, layers, inputs, outputs, g.arguments, g.notes)


def _dims(value: ir.Value) -> list[int | None]:
    """The value's shape, None for a dimension known only at run time."""
    if value.shape is None:
        return []
    return [d if isinstance(d, int) else None for d in value.shape]


def _input_entry(info: InputInfo, batched: bool) -> dict:
    entry = {"name": info.name, "shape": list(info.shape), "dtype": info.dtype,
             "layout": info.layout, "batch": "free" if batched else "fixed"}
    if info.expects:
        entry["expects"] = info.expects
    if info.value_range is not None:
        entry["value_range"] = list(info.value_range)
    return entry


def _layer_entry(g: CodeGen, loc: Located, lines: list[tuple[int, int]]) -> dict:
    if loc.input is not None:
        return {"input": loc.input}
    assert loc.statement is not None
    first, last = lines[loc.statement]
    entry: dict = {"line": first, "variable": loc.var}
    if last != first:
        entry["end_line"] = last
    if loc.item is not None:
        entry["item"] = loc.item
    module = g.body[loc.statement].module
    if module:
        entry["module"] = module
    return entry


# -- the file ------------------------------------------------------------------------------

def _wrapped(code: str, indent: str) -> list[str]:
    """A statement longer than a line, its call's arguments on continuation lines
    (broken after a comma, inside the outermost parentheses)."""
    if len(indent + code) <= LINE_LENGTH or "(" not in code:
        return [indent + code]
    head, _, rest = code.partition("(")
    lines, current = [f"{indent}{head}("], indent + "    "
    depth, piece = 0, ""
    for char in rest:
        piece += char
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            if len(current + piece) > LINE_LENGTH and current.strip():
                lines.append(current.rstrip())
                current = indent + "    " + piece.lstrip()
            else:
                current += piece
            piece = ""
    if len(current + piece) > LINE_LENGTH and current.strip():
        lines.append(current.rstrip())
        current = indent + "    " + piece.lstrip()
    else:
        current += piece
    lines.append(current)
    return lines


def _with_comment(code: str, comment: str, indent: str) -> list[str]:
    """One statement, its source layer named after it, or above it when too long."""
    if comment and len(f"{indent}{code}  # {comment}") <= LINE_LENGTH:
        return [f"{indent}{code}  # {comment}"]
    above = [f"{indent}# {comment}"] if comment else []
    return above + _wrapped(code, indent)


def _shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def _docstring(source: SourceModel | None, infos: list[InputInfo], batched: list[bool],
               model: ir.Model) -> list[str]:
    if source is not None and source.paths:
        import os

        origin = ", ".join(os.path.basename(p) for p in source.paths)
        title = f"{source.description} converted from {origin} ({source.format})"
    elif source is not None:
        title = f"{source.description} converted from a live {source.format} model"
    else:
        title = "A model converted"
    lines = [f'"""{title}.', "",
             f"Written by torch7-migrate {__version__}. Weights: the .safetensors file of the "
             "same name", "beside this file (`load_model()` loads them); inputs, outputs and "
             "the source layer", "of every line: the .json file.", "", "Inputs:"]
    for info, free in zip(infos, batched, strict=True):
        what = f"    {identifier(info.name, 'input')}: {info.dtype} {_shape_text(info.shape)}"
        if info.layout:
            what += f" ({info.layout})"
        if free:
            what += ", any batch size"
        lines.append(what)
        if info.expects:
            lines.append(f"        expects {info.expects}")
    lines.append("Outputs, in order:")
    for value in model.graph.outputs:
        dtype = value.dtype.numpy().name if value.dtype is not None else "float32"
        lines.append(f"    {value.name}: {dtype} "
                     f"{_shape_text('?' if d is None else d for d in _dims(value))}")
    if source is not None and source.fixups:
        lines.append("Changes made on the way:")
        lines += [f"    {fix}" for fix in source.fixups]
    lines.append('"""')
    return [piece for line in lines for piece in _fold(line)]


def _fold(line: str) -> list[str]:
    """A docstring line folded to the line length, continuation lines indented more."""
    if len(line) <= LINE_LENGTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()))
    return textwrap.wrap(line, LINE_LENGTH, initial_indent="", subsequent_indent=indent + "    ",
                         break_long_words=False, break_on_hyphens=False) or [line]


def _example(info: InputInfo) -> str:
    shape = ", ".join(str(d) for d in info.shape)
    if np.dtype(info.dtype).kind in "iu":
        low, high = info.value_range or (0, 9)
        return f"torch.randint({low}, {high + 1}, ({shape}{',' if len(info.shape) == 1 else ''}))"
    return f"torch.rand({shape})"


def _assemble(g: CodeGen, source: SourceModel | None, infos: list[InputInfo],
              returned: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The file's text, and the file line of every forward statement."""
    body_text = [s.code for s in g.body]
    uses_f = any("F." in line for line in body_text)
    out: list[str] = _docstring(source, infos, g.free_inputs, g.model)
    out += ["", "import os", "", "import torch"]
    if uses_f:
        out.append("import torch.nn.functional as F")
    out += ["from torch import nn", "",
            "HERE = os.path.dirname(os.path.abspath(__file__))",
            'WEIGHTS = os.path.join(HERE, "{stem}")',
            "", "", "class Model(nn.Module):"]
    description = source.description if source is not None else "the model"
    out += [f'    """{description}, layer by layer as in the source: each submodule is named',
            '    after the source layer it replaces (see the comment beside it)."""', "",
            "    def __init__(self) -> None:", "        super().__init__()"]
    for declaration in g.init:
        out += _with_comment(declaration.code, declaration.comment, INDENT)
    arguments = ", ".join(f"{a}: torch.Tensor" for a in g.arguments)
    result = "torch.Tensor" if len(returned) == 1 else \
        f"tuple[{', '.join(['torch.Tensor'] * len(returned))}]"
    signature = [f"    def forward(self, {arguments}) -> {result}:"]
    if len(signature[0]) > LINE_LENGTH:
        signature = ["    def forward(", f"{INDENT}self, {arguments}", f"    ) -> {result}:"]
    out += ["", *signature]
    lines = []
    for statement in g.body:
        block = _with_comment(statement.code, statement.comment, INDENT)
        comments = 1 if statement.comment and block[0].lstrip().startswith("# ") else 0
        out += block[:comments]
        # 1-based first and last line of the statement itself
        lines.append((len(out) + 1, len(out) + len(block) - comments))
        out += block[comments:]
    out.append(f"{INDENT}return {', '.join(returned)}")
    examples = ", ".join(_example(i) for i in infos)
    out += ["", "", "def load_model(weights: str = WEIGHTS) -> Model:",
            '    """The model with its converted weights, in evaluation mode."""',
            "    from safetensors.torch import load_file", ""]
    if g.ties:  # assigning tensors would untie the shared weights: copy into them
        out += ["    model = Model()",
                "    model.load_state_dict(load_file(weights), strict=True)"]
    else:
        out += ["    # built on the meta device: the weights are assigned, not initialized first",
                '    with torch.device("meta"):', "        model = Model()",
                "    model.load_state_dict(load_file(weights), strict=True, assign=True)"]
    out += ["    return model.eval()", "", "",
            'if __name__ == "__main__":', "    model = load_model()",
            "    with torch.inference_mode():",
            f"        outputs = model({examples})",
            "    print(outputs.shape if isinstance(outputs, torch.Tensor) else "
            "[o.shape for o in outputs])"]
    return "\n".join(out) + "\n", lines


def file_text(program: Program, weights_name: str) -> str:
    """The program's code with the name of its weights file filled in."""
    return program.code.replace('"{stem}")', f'"{weights_name}")', 1)


def state_bytes(program: Program) -> int:
    return sum(int(a.nbytes) if a.flags["C_CONTIGUOUS"] else a.itemsize * math.prod(a.shape)
               for a in program.state.values())
