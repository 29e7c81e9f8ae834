"""nngraph `gModule`: a DAG of modules, evaluated in its serialized topological order.

This follows gModule:runForwardFunction: the gModule's input is a list of its
inputs (one input: the input itself, which may be a table); every node collects its
inputs by the index its parent has in `data.mapindex`; a node with one input gets
it bare (a tensor or a table), with several a table; split nodes
(`data.selectindex`) pick one entry of their parent's table output; a node without
a module passes its input on. The output is the output node's inputs: one value
(tensor or table) when the gModule has one output, else a table of them.
"""

from migrate.core.errors import ConversionError
from migrate.readers.torch7.module import decode, lua_list
from migrate.readers.torch7.registry import converter
from migrate.readers.torch7.values import describe, is_table


def _data(node):
    data = node["data"] if node is not None else None
    if not isinstance(data, dict):
        raise ConversionError("nngraph node without data")
    return data


def _field(data, name):
    return data.get(name.encode())


def _node_name(node, data):
    label = (_field(data, "annotations") or {}).get(b"name")
    return decode(label) if label else f"node {decode(node['id'])}"


@converter("nn.gModule")
def gmodule(ctx, module, x):
    nodes = lua_list(module.fields.get("forwardnodes"))
    innode, outnode = module.fields.get("innode"), module.fields.get("outnode")
    if not nodes or innode is None or outnode is None:
        raise ConversionError("gModule without forwardnodes/innode/outnode")
    # module paths: the gModule lists its modules in `modules` (forward order)
    index_of = {id(m): i for i, m in enumerate(lua_list(module.fields.get("modules")), start=1)}
    n_inputs = int(module.get("nInputs") or len(lua_list(innode["children"])))
    if n_inputs <= 1:
        inputs = [x]
    elif not is_table(x) or len(x) != n_inputs:
        raise ConversionError(f"takes a table of {n_inputs} inputs (one --input-shape each), "
                              f"got {describe(x)}")
    else:
        inputs = list(x)
    received = {id(_data(innode)): dict(enumerate(inputs, start=1))}

    for node in nodes:
        data = _data(node)
        got = received.get(id(data), {})
        ordered = [got[k] for k in sorted(got)]
        select = _field(data, "selectindex")
        if select is not None:
            if len(ordered) != 1 or not is_table(ordered[0]):
                raise ConversionError(f"split {_node_name(node, data)} expects one table, got "
                                      + (describe(ordered[0]) if len(ordered) == 1
                                         else f"{len(ordered)} inputs"))
            table = ordered[0]
            if not 1 <= int(select) <= len(table):
                raise ConversionError(f"split {_node_name(node, data)} takes entry {select} of "
                                      f"{describe(table)}")
            value = table[int(select) - 1]
        else:
            value = ordered[0] if len(ordered) == 1 else ordered
            mod = _field(data, "module")
            if mod is not None:
                path = f"{module.path}.modules[{index_of.get(id(mod), '?')}]"
                value = ctx.convert(module.child(mod, path), value)
            n_split = _field(data, "nSplitOutputs")
            if n_split is not None and (not is_table(value) or len(value) != int(n_split)):
                raise ConversionError(f"{_node_name(node, data)} is split into {int(n_split)} "
                                      f"but outputs {describe(value)}")
        for child in lua_list(node["children"]):
            child_data = _data(child)
            slot = (_field(child_data, "mapindex") or {}).get(data)
            if slot is None:
                raise ConversionError(f"node {decode(node['id'])} is not in its child's mapindex")
            received.setdefault(id(child_data), {})[int(slot)] = value

    outs = received.get(id(_data(outnode)), {})
    outputs = [outs[k] for k in sorted(outs)]
    if not outputs:
        raise ConversionError("the gModule's output node receives nothing")
    if len(lua_list(outnode["children"])) == 1:
        return outputs[0]
    return outputs
