"""What ``cnnctl check`` reports about a built model (layers, parameters, cost, field, warnings), and the
cost of reaching each output of any Keras model (``cnnctl eval``)."""

from __future__ import annotations

from dataclasses import asdict

import keras

from cnnctl.model.build import Built, shape_of, shape_text, summarize
from cnnctl.model.costs import asymmetric_padding, macs
from cnnctl.model.fields import input_field, receptive_field
from cnnctl.recipe.calls import Graph
from cnnctl.recipe.yaml_loader import format_path


def check_report(built: Built) -> dict:
    """The JSON ``cnnctl check --json`` prints; the table is drawn from it."""
    rows = summarize(built)
    shapes = {name: tuple(t.shape) for name, t in built.tensors.items() if name in built.graph.inputs}
    fields = {name: input_field(name, shape) for name, shape in shapes.items()}
    layers, warnings, last_field = [], [], None
    dead = {call.key for call in built.graph.dead_calls()}
    warnings += dead_node_warnings(built.graph)
    for call, row in zip(built.graph.calls, rows, strict=True):
        if call.key in dead:  # computed by no output: not part of the model, so not counted
            continue
        layer = built.layers[call.key]
        inputs = [shape_of(built.tensors[key]) for key in call.inputs]
        output = shape_of(built.tensors[call.key])
        cost = macs(layer, inputs, output)  # a shared layer costs again at each call
        field = receptive_field(layer, [fields.get(key) for key in call.inputs], inputs, output)
        fields[call.key] = field
        if field is not None and len(output) > 2:  # a tensor with spatial axes
            last_field = field.to_json(row.name)
        uneven = asymmetric_padding(layer, inputs)
        if uneven:
            sizes, kernels, strides, befores, afters = ("x".join(str(d[i]) for d in uneven) for i in range(5))
            warnings.append(
                f"{row.name} ({row.cls}): SAME padding (input {sizes}, kernel {kernels}, stride {strides}) "
                f"pads {befores} before and {afters} after, as TensorFlow does; cnnctl's exports keep it, but a "
                "port by hand to a framework that pads evenly (PyTorch's padding=k//2) would differ here: for "
                "one, pad explicitly (ZeroPadding layers) and use padding: valid"
            )
        item = asdict(row)
        item["class"] = item.pop("cls")
        item["non_trainable_params"] = row.params - row.trainable_params
        item["macs"] = cost
        item["flops"] = None if cost is None else 2 * cost
        layers.append(item)
    known = [item["macs"] for item in layers if item["macs"] is not None]
    model = built.model
    trainable = sum(item["trainable_params"] for item in layers)
    return {
        "name": model.name,
        "inputs": [{"name": n, "shape": list(s.shape), "dtype": s.dtype} for n, s in built.graph.inputs.items()],
        "outputs": [{"name": n, "shape": list(shape_of(built.tensors[k]))[1:]}
                    for n, k in zip(built.graph.output_names, built.graph.outputs, strict=True)],
        "layers": layers,
        "params": model.count_params(),
        "trainable_params": trainable,
        "non_trainable_params": model.count_params() - trainable,
        "macs": sum(known),
        "flops": 2 * sum(known),
        "uncounted_layers": [item["name"] for item in layers if item["macs"] is None],
        "receptive_field": last_field,
        "warnings": warnings,
    }


def dead_node_warnings(graph: Graph) -> list[str]:
    """A warning for each layer call no output depends on (``Graph.dead_calls``)."""
    return [f"{call.layer_name or call.key} ({call.cls or 'shared'}, at {format_path(call.path)}) feeds no output, "
            "so it is not part of the model and is not counted: remove it, or list it in model.outputs"
            for call in graph.dead_calls()]


def output_costs(model: keras.Model) -> list[dict]:
    """Per output of ``model`` (in ``model.outputs`` order), the cost of computing it alone.

    An output's cost is the MACs of every layer call on its path from the inputs
    (its ancestors in the Keras graph), each call counted once: a branch two
    outputs share counts fully in each; a shared layer counts once per call on
    the path, as in ``check_report``. Works on any functional or Sequential model,
    loaded or built, and looks inside nested models (a serving export). The cost
    of all outputs together, the whole model's, is ``path_cost(model.outputs)``::

        output_costs(keras.saving.load_model("RUN/model.keras"))
        # [{"macs": 11776, "flops": 23552, "uncounted_layers": []}, ...]
    """
    return [path_cost([tensor]) for tensor in keras.tree.flatten(model.outputs)]


def exit_costs(model: keras.Model) -> dict:
    """The cost of each output taken as an exit of an early-exit network, in ``model.outputs`` order.

    Per exit: ``macs`` of the exit alone (``output_costs``) and ``macs_with_earlier``,
    of it and every output before it together: what early exiting pays when it
    tries the exits in order and stops at this one (the earlier exits' heads
    included). ``share`` and ``share_with_earlier`` are fractions of the whole
    model's MACs (all outputs), which ``full`` gives; FLOPs = 2 x MACs.
    """
    outputs = keras.tree.flatten(model.outputs)
    full = path_cost(outputs)
    rows = []
    for i, tensor in enumerate(outputs):
        alone, with_earlier = path_cost([tensor]), path_cost(outputs[: i + 1])
        rows.append({
            "macs": alone["macs"], "flops": alone["flops"], "share": _share(alone["macs"], full["macs"]),
            "macs_with_earlier": with_earlier["macs"], "flops_with_earlier": with_earlier["flops"],
            "share_with_earlier": _share(with_earlier["macs"], full["macs"]),
            "uncounted_layers": with_earlier["uncounted_layers"],
        })
    return {"full": full, "exits": rows}


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def path_cost(tensors: list) -> dict:
    """MACs and FLOPs (2 x MACs) of the layer calls ``tensors`` depend on, each call once; layers cnnctl
    cannot cost (``None`` from ``costs.macs``) are left out and named in ``uncounted_layers``."""
    # Keras 3 records, on each symbolic tensor, the call that made it (``_keras_history``: the operation and
    # its ``_inbound_nodes`` index); a node holds the call's input tensors. ``path`` is the chain of nested-model
    # calls the tensor lies inside, so that a model called twice has its layers counted per call.
    seen: set = set()
    total, uncounted = 0, []
    stack: list = [(tensor, ()) for tensor in tensors]
    while stack:
        tensor, path = stack.pop()
        operation, node_index, tensor_index = tensor._keras_history
        node = None if operation is None else operation._inbound_nodes[node_index]
        if node is None or node.is_input:  # an input of the model; or of a nested model: go on from its caller's
            if path:
                outer, nested = path[-1]
                index = next(i for i, t in enumerate(keras.tree.flatten(nested.inputs)) if t is tensor)
                stack.append((outer.input_tensors[index], path[:-1]))
            continue
        if isinstance(operation, keras.Model):  # a nested model: follow the output used into it
            stack.append((keras.tree.flatten(operation.outputs)[tensor_index], (*path, (node, operation))))
            continue
        key = (*(id(n) for n, _ in path), id(node))
        if key in seen:
            continue
        seen.add(key)
        if isinstance(operation, keras.layers.Layer):
            cost = macs(operation, [tuple(t.shape) for t in node.input_tensors], tuple(node.output_tensors[0].shape))
            if cost is None:
                uncounted.append(operation.name)
            else:
                total += cost
        stack.extend((t, path) for t in node.input_tensors)
    return {"macs": total, "flops": 2 * total, "uncounted_layers": sorted(set(uncounted))}


def format_count(n: int | None) -> str:
    """``14460`` -> ``14.5K``; ``None`` -> ``?``."""
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


__all__ = ["check_report", "exit_costs", "format_count", "output_costs", "path_cost", "shape_text"]
