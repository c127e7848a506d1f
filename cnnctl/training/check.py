"""``cnnctl check``: everything ``train`` would refuse, found without training; the model explained.

``check_recipe`` checks that the data's files exist, builds the model (shapes, parameters, multiply-adds, receptive
field, padding warnings: ``cnnctl.model.report``), makes every check of training
that needs no data (``preflight.check_training``) and, with ``data=True``, loads the
data and makes the rest (``preflight.prepare``), decoding every image file now
rather than mid-epoch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnctl.recipe import Recipe


@dataclass
class CheckReport:
    """What ``cnnctl check`` reports. ``layers``: one entry per layer call (name, class, output_shape, params,
    trainable_params, non_trainable_params, macs, flops, inputs, shares); ``data``: the data report, with
    ``check(..., data=True)``."""

    name: str
    inputs: list[dict]
    outputs: list[dict]
    layers: list[dict]
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    flops: int
    uncounted_layers: list[str]
    receptive_field: dict | None
    warnings: list[str] = field(default_factory=list)
    data: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``cnnctl check --json`` prints (after the recipe's path)."""
        out = asdict(self)
        if out["data"] is None:
            del out["data"]
        return out

    def graph_nodes(self) -> list[dict]:
        """The layer graph as ``cnnctl.model.draw.render_graph`` takes it: the inputs, then every layer call."""
        nodes = [{"name": i["name"], "class": "Input", "output_shape": i["shape"], "params": 0, "inputs": []}
                 for i in self.inputs]
        return nodes + [{k: layer[k] for k in ("name", "class", "output_shape", "params", "inputs")}
                        for layer in self.layers]


def check_recipe(recipe: Recipe, *, data: bool = False, graph: str | os.PathLike | None = None) -> CheckReport:
    """Check ``recipe`` as ``cnnctl check`` does; ``graph``: also draw the layer graph to this .svg or .png file."""
    from cnnctl.data.report import data_report
    from cnnctl.data.sources.base import check_paths
    from cnnctl.data.sources.images import report_bad
    from cnnctl.model import build, check_report
    from cnnctl.training.preflight import check_training, prepare

    check_paths(recipe.data)  # cheap, so made without data=True too; before the model is built
    built = build(recipe)
    training_warnings = check_training(built.model, recipe)
    report = CheckReport(**check_report(built))
    report.warnings += training_warnings
    if data:
        loaded = prepare(recipe).data  # every check train makes before it starts: shapes, classes, loss, weights
        if loaded.verify is not None:  # image files: decode every one now, not mid-epoch
            report_bad(loaded.verify(), recipe.data.on_error)
        report.data = data_report(loaded, class_weighted=recipe.train.class_weight is not None)
        report.warnings += report.data["warnings"]
    if graph is not None:
        from cnnctl.model.draw import render_graph

        report.warnings += render_graph(report.graph_nodes(), graph, title=report.name)  # a PNG too large to read
    return report


def format_check(report: CheckReport) -> list[str]:
    """What ``cnnctl check`` prints: the layer table, parameters, cost, outputs, receptive field (and the data)."""
    from cnnctl.data.report import format_data_report
    from cnnctl.model.report import format_count
    from cnnctl.tables import format_table

    graph = any(len(layer["inputs"]) != 1 or layer["shares"] for layer in report.layers) or len(
        report.inputs) > 1 or len(report.outputs) > 1
    inputs = ", ".join(f"{i['name']} {tuple(i['shape'])}" for i in report.inputs)
    lines = [f"{report.name}: input {inputs}"]
    headers = ["#", "layer", "class", "output shape", "params", "MACs"] + (["reads"] if graph else [])
    rows = []
    for i, layer in enumerate(report.layers):
        shape = "(" + ", ".join("None" if d is None else str(d) for d in layer["output_shape"]) + ")"
        params = f"shares {layer['shares']}" if layer["shares"] else f"{layer['params']:,}"
        row = [i, layer["name"], layer["class"], shape, params, format_count(layer["macs"])]
        rows.append(row + ([", ".join(layer["inputs"])] if graph else []))
    lines.append(format_table(headers, rows, "rlllrr"))
    lines.append(f"params: {report.params:,} (trainable {report.trainable_params:,}, "
                 f"non-trainable {report.non_trainable_params:,})")
    uncounted = f" (not counted: {', '.join(report.uncounted_layers)})" if report.uncounted_layers else ""
    lines.append(f"MACs: {report.macs:,}  FLOPs: {report.flops:,} per example{uncounted}")
    if len(report.outputs) > 1:
        lines.append("outputs: " + ", ".join(f"{o['name']} {tuple(o['shape'])}" for o in report.outputs))
    field_ = report.receptive_field
    if field_:
        size, stride = ("x".join("?" if v is None else str(v) for v in field_[key]) for key in ("size", "stride"))
        whole = " (the whole input)" if field_.get("whole_input") else ""
        lines.append(f"receptive field of {field_['layer']}: {size} input pixels{whole}, stride {stride}")
    if report.data is not None:
        lines += ["", *format_data_report(report.data)]
    return lines
