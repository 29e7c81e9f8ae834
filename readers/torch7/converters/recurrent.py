"""Element-Research/rnn recurrent layers, unrolled over the steps a forward pass makes.

- nn.LSTM, nn.FastLSTM, nn.GRU (AbstractRecurrent): each forward call is one time step
  of their `recurrentModule`, an nn graph taking {x, h_prev, c_prev} (GRU: {x, h_prev})
  and returning {h, c} (GRU: h). It is converted like any other module graph, so every
  variant (peepholes, cell2gate, nngraph or batch-normalised FastLSTM, dropouts) comes
  out as it computes. The state a module carries from one call to the next is kept in
  `ctx.recurrent_state`, so a module called several times (under a Sequencer, or shared)
  advances exactly as in Torch7; a module's first step starts from its user-given
  initial state (userPrevOutput / userPrevCell) or zeros, as after forget().
- nn.Sequencer(module): forget(), then the module once per step of a T x ... tensor
  (outputs stacked) or of a table (a table of outputs); nn.Recursor(module) is one
  call of its module.
- nn.SeqLSTM / nn.SeqLSTMP: the fused whole-sequence LSTM (gates i, f, o, g from one
  (D + R) x 4H weight), unrolled over its T steps.

Unrolling over the fixed sequence length is exact and needs only MatMul/Gemm, Add,
Sigmoid, Tanh and Mul, which every target (Caffe2 mobile included) runs.
"""

import numpy as np

from migrate.core.errors import ConversionError
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import as_table, as_tensor, describe, is_tensor

PACKAGE = "Element-Research/rnn"
_WITH_CELL = ("nn.LSTM", "nn.FastLSTM")


def _step_module(module):
    step = module.fields.get("recurrentModule")
    if step is None:
        children = module.children()
        if not children:
            raise ConversionError(f"{module.cls} has no recurrentModule")
        return children[0]
    return module.child(step, f"{module.path}.modules[1]")


def _initial(ctx, module, x, name):
    """The state before the first step: user-given (userPrevOutput / userPrevCell), one
    stored for step 0 (outputs[0] / cells[0]), or zeros shaped for x's batch."""
    user = module.tensor("userPrevOutput" if name == "outputs" else "userPrevCell")
    if user is None:
        stored = module.fields.get(name)
        stored = stored.get(0) if isinstance(stored, dict) else None
        if isinstance(stored, np.ndarray) and stored.size:
            user = np.ascontiguousarray(stored, np.float32)
    size = module.int("outputSize")
    shape = ctx.shape(x)
    want = [size] if len(shape) == 1 else [shape[0], size]
    if user is not None:
        if list(user.shape) != want:
            raise ConversionError(f"initial state {list(user.shape)} does not match {want}")
        return ctx.const(user, "initial_state")
    return ctx.const(np.zeros(want, np.float32), "zero_state")


@converter("nn.LSTM", "nn.FastLSTM", "nn.GRU", package=PACKAGE)
def recurrent_step(ctx, module, x):
    x = as_tensor(x, module.cls)
    if len(ctx.shape(x)) not in (1, 2):
        raise ConversionError(f"{module.cls} takes one step of 1-D or 2-D input, got "
                              f"{list(ctx.shape(x))} (a sequence goes through nn.Sequencer)")
    key = id(module.obj)
    with_cell = module.cls in _WITH_CELL
    state = ctx.recurrent_state.get(key)
    if state is None:
        if module.int("step", 1) > 1:
            ctx.note(f"{module.cls} at {module.path} was saved mid-sequence (step "
                     f"{module.int('step')}): converted from its initial state, as after "
                     "forget()")
        state = [_initial(ctx, module, x, "outputs")]
        if with_cell:
            state.append(_initial(ctx, module, x, "cells"))
    ctx.note(f"{module.cls} ({PACKAGE}): each call is one time step of its step module "
             "(Linear/Add/Sigmoid/Tanh/Mul, no RNN operator, so every target runs it); under "
             "nn.Sequencer it is unrolled over the sequence, whose length the input shape fixes")
    out = ctx.convert(_step_module(module), [x, *state])
    if with_cell:
        h, c = as_table(out, f"{module.cls}'s step module output", size=2)
        state = [as_tensor(h, "the LSTM output"), as_tensor(c, "the LSTM cell")]
    else:
        state = [as_tensor(out, f"{module.cls}'s step module output")]
    ctx.recurrent_state[key] = state
    return state[0]


def _forget(ctx, module):
    """AbstractRecurrent:forget() on a module and everything inside it."""
    from migrate.readers.torch7.reader import iter_modules

    for m in iter_modules(module):
        ctx.recurrent_state.pop(id(m.obj), None)


@converter("nn.Recursor", package=PACKAGE)
def recursor(ctx, module, x):
    children = module.children()
    if len(children) != 1:
        raise ConversionError(f"Recursor wraps one module, found {len(children)}")
    return ctx.convert(children[0], x)


@converter("nn.Sequencer", package=PACKAGE)
def sequencer(ctx, module, x):
    children = module.children()
    if len(children) != 1:
        raise ConversionError(f"Sequencer wraps one module, found {len(children)}")
    inner = children[0]
    remember = module.get("_remember", "neither")
    if remember in ("eval", "both"):
        ctx.note(f"nn.Sequencer at {module.path} remembers its state between calls: "
                 "converted from the initial state (one call)")
    _forget(ctx, inner)
    if is_tensor(x):
        shape = ctx.shape(x)
        steps = _steps(ctx, x, shape[0])
        outs = [as_tensor(ctx.convert(inner, step), "Sequencer's module output (tensor input)")
                for step in steps]
        axes = ctx.int64s([0], "axes")
        stacked = [ctx.op("Unsqueeze", [o, axes], hint="step_out") for o in outs]
        return ctx.op("Concat", stacked, hint="sequence", axis=0) if len(outs) > 1 \
            else stacked[0]
    return [ctx.convert(inner, step) for step in as_table(x, "Sequencer")]


def _steps(ctx, x, count):
    """x[1], ..., x[T] of a T x ... tensor."""
    axes = ctx.int64s([0], "axes")
    if count == 1:
        return [ctx.op("Squeeze", [x, axes], hint="step")]
    parts = ctx.builder.op("Split", [x, ctx.int64s([1] * count, "split")], {"axis": 0},
                           num_outputs=count, hint="steps").producer().outputs
    return [ctx.op("Squeeze", [p, axes], hint="step") for p in parts]


@converter("nn.LinearNoBias", package=PACKAGE)
def linear_no_bias(ctx, module, x):
    x = as_tensor(x, "LinearNoBias")
    weight = module.tensor("weight")
    if weight is None or weight.ndim != 2:
        raise ConversionError("LinearNoBias has no 2-D weight")
    w = ctx.const(weight, "weight")
    return ctx.batched(x, 2, lambda x2: ctx.op("Gemm", [x2, w], hint="fc", transB=1))


@converter("nn.SAdd", package=PACKAGE)
def scalar_add(ctx, module, x):
    """y = x + addend, negated when `negate` (GRU's 1 - z is SAdd(-1, true))."""
    x = as_tensor(x, "SAdd")
    y = ctx.op("Add", [x, ctx.scalar(module.float("addend"), "addend")], hint="sadd")
    return ctx.op("Neg", [y], hint="negate") if module.bool("negate") else y


@converter("nn.SeqLSTM", "nn.SeqLSTMP", package=PACKAGE)
def seq_lstm(ctx, module, x):
    """SeqLSTM:updateOutput: per step, gates = b + x_t Wx + h_{t-1} Wh; i, f, o =
    sigmoid, g = tanh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t) (SeqLSTMP: h_t Wo)."""
    c0 = h0 = None
    if is_tensor(x):
        seq = x
    else:
        items = as_table(x, "SeqLSTM")
        if len(items) == 3:
            c0, h0, seq = items
        elif len(items) == 2:
            h0, seq = items
        else:
            raise ConversionError(f"SeqLSTM takes x, {{h0, x}} or {{c0, h0, x}}, got "
                                  f"{describe(x)}")
        seq = as_tensor(seq, "SeqLSTM's sequence")
    d, r = module.int("inputsize"), module.int("outputsize")
    h = module.int("hiddensize", r)
    weight, bias = module.tensor("weight"), module.tensor("bias")
    if weight is None or bias is None or weight.shape != (d + r, 4 * h) or bias.size != 4 * h:
        raise ConversionError(f"SeqLSTM weight/bias do not match sizes {d}, {h}, {r}")
    projection = module.tensor("weightO") if module.cls == "nn.SeqLSTMP" else None
    if module.cls == "nn.SeqLSTMP" and (projection is None or projection.shape != (h, r)):
        raise ConversionError("SeqLSTMP without a weightO of hiddensize x outputsize")
    batch_first = module.bool("batchfirst")
    if batch_first:
        seq = ctx.op("Transpose", [seq], hint="time_first", perm=[1, 0, 2])
    shape = ctx.shape(seq)
    if len(shape) != 3 or shape[2] != d:
        raise ConversionError(f"SeqLSTM takes a T x N x {d} sequence, got {list(shape)}")
    steps, n = shape[0], shape[1]
    ctx.note(f"{module.cls} ({PACKAGE}) unrolled over its {steps} time steps (exact: Gemm/MatMul, "
             "Add, Sigmoid, Tanh, Mul; no LSTM operator, so Caffe2 mobile runs it); the "
             f"converted model takes sequences of exactly {steps} steps")
    c_prev = _state(ctx, module, c0, "userPrevCell", [n, h])
    h_prev = _state(ctx, module, h0, "userPrevOutput", [n, r])
    wx, wh = ctx.const(weight[:d], "weight_x"), ctx.const(weight[d:], "weight_h")
    b = ctx.const(bias.reshape(4 * h), "bias")
    wo = ctx.const(projection, "weight_o") if projection is not None else None
    mask_zero = module.bool("maskzero")
    outputs = []
    for t, x_t in enumerate(_steps(ctx, seq, steps)):
        gates = ctx.op("Gemm", [x_t, wx, b], hint="gates_x")
        if h_prev is not None:
            gates = ctx.op("Add", [gates, ctx.op("MatMul", [h_prev, wh], hint="gates_h")],
                           hint="gates")
        i, f, o, g = ctx.builder.op("Split", [gates, ctx.int64s([h] * 4, "split")],
                                    {"axis": 1}, num_outputs=4, hint="gate").producer().outputs
        i, f, o = (ctx.op("Sigmoid", [v], hint=k) for v, k in ((i, "i"), (f, "f"), (o, "o")))
        g = ctx.op("Tanh", [g], hint="g")
        c = ctx.op("Mul", [i, g], hint="ig")
        if c_prev is not None:
            c = ctx.op("Add", [ctx.op("Mul", [f, c_prev], hint="fc"), c], hint="cell")
        hidden = ctx.op("Mul", [ctx.op("Tanh", [c], hint="tanh_c"), o], hint="hidden")
        if wo is not None:
            hidden = ctx.op("MatMul", [hidden, wo], hint="project")
        if mask_zero:  # a step whose input row is all zeros resets that row's state
            keep = _nonzero_rows(ctx, x_t)
            hidden = ctx.op("Mul", [hidden, keep], hint="masked_h")
            c = ctx.op("Mul", [c, keep], hint="masked_c")
        outputs.append(ctx.op("Unsqueeze", [hidden, ctx.int64s([0], "axes")], hint=f"h{t + 1}"))
        h_prev, c_prev = hidden, c
    out = ctx.op("Concat", outputs, hint="sequence", axis=0) if len(outputs) > 1 else outputs[0]
    if batch_first:
        out = ctx.op("Transpose", [out], hint="batch_first", perm=[1, 0, 2])
    return out


def _state(ctx, module, given, field, shape):
    """c0/h0 from the input table, else the user-set state, else None (zeros)."""
    if given is not None:
        given = as_tensor(given, "SeqLSTM's initial state")
        if list(ctx.shape(given)) != shape:
            raise ConversionError(f"SeqLSTM initial state {list(ctx.shape(given))}, "
                                  f"expected {shape}")
        return given
    user = module.tensor(field)
    if user is not None:
        if list(user.shape) != shape:
            raise ConversionError(f"SeqLSTM {field} {list(user.shape)}, expected {shape}")
        return ctx.const(user, field)
    return None


def _nonzero_rows(ctx, x_t):
    """1 for rows of x_t with any non-zero value, else 0 (N x 1)."""
    norm = ctx.op("ReduceSum", [ctx.op("Mul", [x_t, x_t], hint="square"),
                                ctx.int64s([1], "axes")], hint="norm", keepdims=1)
    zero = ctx.op("Equal", [norm, ctx.scalar(0.0, "zero")], hint="is_zero")
    return ctx.op("Cast", [ctx.op("Not", [zero], hint="nonzero")], hint="keep", to=1)
