"""Reductions over axes."""

from __future__ import annotations

from migrate.readers.caffe2.registry import caffe2_op

_REDUCE = {"ReduceMean": "ReduceMean", "ReduceSum": "ReduceSum", "ReduceMax": "ReduceMax",
           "ReduceMin": "ReduceMin"}


def _reduce(onnx_type: str):
    def convert(ctx, op, inputs):
        x = inputs[0]
        rank = len(ctx.shape(x))
        axes = ctx.args.ints("axes", list(range(rank)))
        keep = ctx.args.int("keepdims", 1)
        if onnx_type == "ReduceSum":  # opset 13+: the axes are an input
            return [ctx.op("ReduceSum", [x, ctx.int64s(axes, "axes")], hint="sum",
                           keepdims=keep)]
        return [ctx.op(onnx_type, [x], hint=onnx_type.lower(), axes=axes, keepdims=keep)]
    return convert


for _caffe2, _onnx in _REDUCE.items():
    caffe2_op(_caffe2)(_reduce(_onnx))
