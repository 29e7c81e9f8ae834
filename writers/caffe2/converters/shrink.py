"""Shrink (hard and soft shrinkage) and Softsign."""

import numpy as np

from migrate.writers.caffe2.registry import op_converter


@op_converter("Softsign")
def softsign(w, node):
    w.simple("Softsign", "softsign", node, inputs=[w.blob(node.inputs[0])])


@op_converter("Shrink")
def shrink(w, node):
    """y = x - bias above lambd, x + bias below -lambd, else 0. Caffe2 has no Shrink:
    soft shrinkage (bias = lambd) is x - clip(x, -lambd, lambd); otherwise
    (x - bias * sign(x)) * (|x| > lambd)."""
    lambd = node.attributes.get_float("lambd", 0.5)
    bias = node.attributes.get_float("bias", 0.0)
    x = w.blob(node.inputs[0])
    name = w.prefix("shrink")
    if bias == lambd:
        w.note("Shrink (soft) -> Clip + Sub (Caffe2 has no Shrink)")
        w.emit("Clip", [x], [f"{name}_clipped"], min=-lambd, max=lambd)
        w.emit("Sub", [x, f"{name}_clipped"], [name])
        w.bind(node.outputs[0], name)
        return
    w.note("Shrink -> Abs + GT + Cast + Mul (Caffe2 has no Shrink)")
    w.emit("Abs", [x], [f"{name}_abs"])
    threshold = w.param(np.asarray(lambd, np.float32), f"{name}_lambd")
    w.emit("GT", [f"{name}_abs", threshold], [f"{name}_outside"])
    w.emit("Cast", [f"{name}_outside"], [f"{name}_mask"], to=1)  # FLOAT
    kept = x
    if bias:
        w.emit("Sign", [x], [f"{name}_sign"])
        w.emit("Scale", [f"{name}_sign"], [f"{name}_shift"], scale=bias)
        w.emit("Sub", [x, f"{name}_shift"], [f"{name}_shifted"])
        kept = f"{name}_shifted"
    w.emit("Mul", [kept, f"{name}_mask"], [name])
    w.bind(node.outputs[0], name)
