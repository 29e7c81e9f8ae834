"""nngraph `gModule`: a DAG of modules, evaluated in its serialized topological order.

This follows gModule:runForwardFunction: every node collects its inputs by the
index its parent has in `data.mapindex`; a node with one input gets it bare,
with several a table; split nodes (`data.selectindex`) pick one entry of their
parent's table output; a node without a module passes its input on.
"""

import onnx_ir as ir

from migrate.core.errors import ConversionError
from migrate.readers.torch7.module import decode, lua_list
from migrate.readers.torch7.registry import converter


def _data(node):
    data = node["data"] if node is not None else None
    if not isinstance(data, dict):
        raise ConversionError("nngraph node without data")
    return data


def _field(data, name):
    return data.get(name.encode())


@converter("nn.gModule")
def gmodule(ctx, module, x):
    nodes = lua_list(module.fields.get("forwardnodes"))
    innode, outnode = module.fields.get("innode"), module.fields.get("outnode")
    if not nodes or innode is None or outnode is None:
        raise ConversionError("gModule without forwardnodes/innode/outnode")
    # module paths: the gModule lists its modules in `modules` (forward order)
    index_of = {id(m): i for i, m in enumerate(lua_list(module.fields.get("modules")), start=1)}
    n_inputs = module.get("nInputs") or len(lua_list(innode["children"]))
    inputs = [x] if n_inputs <= 1 else list(x)
    received = {id(_data(innode)): dict(enumerate(inputs, start=1))}

    for node in nodes:
        data = _data(node)
        got = received.get(id(data), {})
        ordered = [got[k] for k in sorted(got)]
        select = _field(data, "selectindex")
        if select is not None:
            if len(ordered) != 1 or isinstance(ordered[0], ir.Value):
                raise ConversionError("split node does not receive one table")
            value = ordered[0][int(select) - 1]
        else:
            value = ordered[0] if len(ordered) == 1 else ordered
            mod = _field(data, "module")
            if mod is not None:
                path = f"{module.path}.modules[{index_of.get(id(mod), '?')}]"
                value = ctx.convert(module.child(mod, path), value)
        for child in lua_list(node["children"]):
            child_data = _data(child)
            slot = _field(child_data, "mapindex").get(data)
            if slot is None:
                raise ConversionError(f"node {decode(node['id'])} is not in its child's mapindex")
            received.setdefault(id(child_data), {})[int(slot)] = value

    outs = received.get(id(_data(outnode)), {})
    outputs = [outs[k] for k in sorted(outs)]
    if len(lua_list(outnode["children"])) == 1:
        return outputs[0]
    return outputs

