"""What ``cnnctl check`` reports about a built model: layers, parameters, cost, field, warnings."""

from __future__ import annotations

from dataclasses import asdict

from cnnctl.model.build import Built, shape_of, shape_text, summarize
from cnnctl.model.costs import asymmetric_padding, input_field, macs, receptive_field


def check_report(built: Built) -> dict:
    """The JSON ``cnnctl check --json`` prints; the table is drawn from it."""
    rows = summarize(built)
    shapes = {name: tuple(t.shape) for name, t in built.tensors.items() if name in built.graph.inputs}
    fields = {name: input_field(shape) for name, shape in shapes.items()}
    layers, warnings, last_field = [], [], None
    for call, row in zip(built.graph.calls, rows, strict=True):
        layer = built.layers[call.key]
        inputs = [shape_of(built.tensors[key]) for key in call.inputs]
        output = shape_of(built.tensors[call.key])
        cost = macs(layer, inputs, output)  # a shared layer costs again at each call
        field = receptive_field(layer, [fields.get(key) for key in call.inputs], inputs, output)
        fields[call.key] = field
        if field is not None:
            last_field = {"layer": row.name, "size": _whole(field.size), "stride": _whole(field.stride)}
        uneven = asymmetric_padding(layer, inputs)
        if uneven:
            sizes, kernels, strides, befores, afters = ("x".join(str(d[i]) for d in uneven) for i in range(5))
            warnings.append(
                f"{row.name} ({row.cls}): SAME padding (input {sizes}, kernel {kernels}, stride {strides}) "
                f"pads {befores} before and {afters} after; ports that pad evenly (ONNX, PyTorch, "
                "some TFLite kernels) will differ. To be portable, pad explicitly (ZeroPadding layers) and "
                "use padding: valid"
            )
        item = asdict(row)
        item["class"] = item.pop("cls")
        item["non_trainable_params"] = row.params - row.trainable_params
        item["macs"] = cost
        item["flops"] = None if cost is None else 2 * cost
        layers.append(item)
    known = [item["macs"] for item in layers if item["macs"] is not None]
    model = built.model
    trainable = sum(r.trainable_params for r in rows)
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


def _whole(values: tuple) -> list:
    return [int(v) if float(v).is_integer() else round(float(v), 3) for v in values]


def format_count(n: int | None) -> str:
    """``14460`` -> ``14.5K``; ``None`` -> ``?``."""
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


__all__ = ["check_report", "format_count", "shape_text"]
