"""Is a Caffe2 init_net/predict_net pair ready for Caffe2's mobile predictor?

Rules (each violation is one line of the report):
- every operator is registered in the real Caffe2 CPU build (operators-cpu.txt) and
  is none of the kinds mobile builds leave out: the ATen bridge, gradient, optimizer,
  loss and checkpoint ops, nothing that needs CUDA or a CUDNN engine;
- ops and nets run on the CPU device, with no engine other than the CPU ones;
- every op input is an external input or was produced by an earlier op; a blob is
  written once, except by in-place ops (an output that is also that op's input);
- external_output blobs are produced; external_input = the data inputs plus
  exactly the parameters the init net fills;
- layout is NCHW and the init net fills float32 parameters (int64 only for shapes).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

from migrate.core.errors import MigrateError, UsageError
from migrate.core.formats.caffe2 import netdef_role
from migrate.core.formats.caffe2_pb2 import NetDef


@functools.cache
def _registered_operators() -> frozenset[str]:
    """The operators the real Caffe2 CPU build registers (operators-cpu.txt, written
    from the runtime by tools/caffe2_operators.py)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "operators-cpu.txt")
    with open(path) as fh:
        return frozenset(line.strip() for line in fh if line.strip() and not line.startswith("#"))


CPU_ENGINES = frozenset({"", "DEFAULT", "NNPACK", "DEPTHWISE_3x3", "MOBILE"})
TRAINING_MARKERS = ("Gradient", "Loss", "Adam", "Adagrad", "Momentum", "Iter", "LearningRate",
                    "WeightedSum", "Checkpoint", "Save", "Load", "Accumulate")
PARAM_FILLS = {"GivenTensorFill": "float32", "GivenTensorInt64Fill": "int64",
               "GivenTensorIntFill": "int32"}


@dataclass
class MobileReport:
    predict_net: str
    init_net: str | None
    ops: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _load(path: str) -> NetDef:
    try:
        with open(path, "rb") as fh:
            return NetDef.FromString(fh.read())
    except OSError as exc:
        raise MigrateError(f"cannot read: {exc.strerror}", file=path) from None
    except Exception:  # protobuf's DecodeError
        raise MigrateError("not a Caffe2 NetDef protobuf", file=path) from None


def check_mobile_files(paths: list[str]) -> MobileReport:
    """The pair in either order, told apart by content; a predict net alone is checked
    with the *_init_net.pb beside it."""
    if len(paths) > 2:
        raise UsageError("give one init_net and one predict_net")
    roles: dict[str, str] = {}
    for path in paths:
        role = netdef_role(path)
        if role in roles:
            raise UsageError(f"both {roles[role]} and {path} are {role}s: give one of each")
        roles[role] = path
    if "predict_net" not in roles:
        raise UsageError("this is an init_net (it holds only fills): give the predict_net too, "
                         "the operators to check are there", file=roles["init_net"])
    return check_mobile(roles["predict_net"], roles.get("init_net"))


def sibling_init_net(predict_path: str) -> str | None:
    if predict_path.endswith("predict_net.pb"):
        candidate = predict_path[: -len("predict_net.pb")] + "init_net.pb"
        if os.path.exists(candidate):
            return candidate
    return None


def check_mobile(predict_path: str, init_path: str | None = None) -> MobileReport:
    init_path = init_path or sibling_init_net(predict_path)
    predict = _load(predict_path)
    report = MobileReport(predict_path, init_path, ops=len(predict.op))
    problems = report.problems

    if not predict.op:
        problems.append("the predict_net has no operators (empty or not a Caffe2 NetDef)")
    if not predict.external_output:
        problems.append("the predict_net declares no external_output")
    if predict.device_option.device_type not in (0,):
        problems.append(f"net device_type {predict.device_option.device_type} is not the CPU")
    available = set(predict.external_input)
    written: set[str] = set()
    for k, op in enumerate(predict.op):
        where = f"op {k} ({op.type} -> {', '.join(op.output)})"
        if op.type == "ATen" or op.type.startswith("ATen"):
            problems.append(f"{where}: ATen operators are not available in mobile builds")
        elif any(marker in op.type for marker in TRAINING_MARKERS) or op.is_gradient_op:
            problems.append(f"{where}: training-only operator")
        elif op.type not in _registered_operators():
            problems.append(f"{where}: operator '{op.type}' is not registered in Caffe2's CPU "
                            "build")
        if op.engine not in CPU_ENGINES:
            problems.append(f"{where}: engine '{op.engine}' is not available on mobile CPUs")
        if op.HasField("device_option") and op.device_option.device_type != 0:
            problems.append(f"{where}: runs on device_type {op.device_option.device_type}")
        for arg in op.arg:
            if arg.name == "order" and arg.s not in (b"NCHW",):
                problems.append(f"{where}: order {arg.s.decode()} (expected NCHW)")
            if arg.name == "is_test" and arg.i != 1:
                problems.append(f"{where}: is_test={arg.i} (training mode)")
        for name in op.input:
            if name not in available:
                problems.append(f"{where}: input '{name}' is neither an external input nor "
                                "produced by an earlier op")
        for name in op.output:
            if name in written and name not in op.input:
                problems.append(f"{where}: blob '{name}' is written twice (not in place)")
            if name in predict.external_input and name not in op.input:
                problems.append(f"{where}: overwrites external input '{name}'")
            written.add(name)
            available.add(name)
    for name in predict.external_output:
        if name not in available:
            problems.append(f"external_output '{name}' is never produced")
    if init_path is None:
        problems.append("no init_net given or found beside the predict_net: parameters unchecked")
        return report
    _check_init(_load(init_path), predict, problems)
    return report


def _check_init(init: NetDef, predict: NetDef, problems: list[str]) -> None:
    filled: dict[str, str] = {}
    for op in init.op:
        kind = PARAM_FILLS.get(op.type)
        if kind is None:
            problems.append(f"init_net op {op.type} -> {', '.join(op.output)}: not a "
                            "parameter fill the mobile predictor can load")
            continue
        for name in op.output:
            filled[name] = kind
    params = [n for n in predict.external_input if n in filled]
    inputs = [n for n in predict.external_input if n not in filled]
    for name in inputs:
        problems.append(f"external_input '{name}' is not filled by the init_net")
    used = {name for op in predict.op for name in op.input}
    for name in filled:
        if name not in predict.external_input:
            problems.append(f"init_net fills '{name}', which is not an external_input")
        elif name not in used:
            problems.append(f"parameter '{name}' is filled but never used")
    shape_args = {name for op in predict.op for name in op.input[1:]
                  if op.type in ("Reshape", "Slice", "ResizeNearest")}
    for name in params:
        if filled[name] != "float32" and name not in shape_args:
            problems.append(f"parameter '{name}' is {filled[name]}, not float32")
