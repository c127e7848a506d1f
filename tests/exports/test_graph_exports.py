"""GraphConv models export to every format, each export checked against Keras by the writer.

The layer's fixed graph is a 3x3 stencil on the pixel grid and a constant matrix otherwise, both made in
``call``: TFLite's converter and tf2onnx take either (a batched einsum, or a tensor captured from outside
the traced function, they did not: issue 16, item 16).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cnnctl import train
from cnnctl.recipe import load_recipe_text

FORMATS = ["keras", "savedmodel", "tflite", "onnx"]


def recipe(name: str, layers: list) -> str:
    return yaml.safe_dump({
        "name": name, "seed": 1, "data": {"source": "digits", "split": {"validation": 0.1, "test": 0.2}},
        "model": {"input": [8, 8, 1],
                  "layers": [*layers, "Flatten", {"Dense": {"units": 10, "activation": "softmax"}}]},
        "train": {"epochs": 1}, "log": {"tensorboard": False}, "export": FORMATS})


def ring(nodes: int) -> list[list[float]]:
    """Each node joined to the next and the previous, around a ring."""
    a = np.zeros((nodes, nodes))
    for i in range(nodes):
        a[i, (i + 1) % nodes] = a[(i + 1) % nodes, i] = 1.0
    return a.tolist()


GRID = [{"GraphConv": {"units": 4, "connectivity": 8, "sigma": 0.7, "activation": "relu"}},  # units > features
        {"GraphConv": {"units": 2, "connectivity": 4, "normalize": "row"}}]  # units < features
EXPLICIT = [{"Reshape": {"target_shape": [64, 1]}},
            {"GraphConv": {"units": 3, "adjacency": ring(64), "activation": "relu"}},
            {"Reshape": {"target_shape": [8, 8, 3]}}]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "layers"), [("grid", GRID), ("explicit", EXPLICIT)])
def test_graph_conv_models_export_to_every_format_and_agree_with_keras(tmp_path, name, layers):
    result = train(load_recipe_text(recipe(name, layers), f"{name}.yaml"), runs_dir=tmp_path, progress=False)
    metrics = json.loads((result.run.path / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    records = metrics["exports"]
    assert sorted(records) == sorted(FORMATS)
    for fmt in FORMATS:
        record = records[fmt]
        assert "error" not in record, record
        # the writer ran it on the test split and compared it with Keras (a failed comparison is an error)
        assert record["checked_examples"] == metrics["examples"]["test"] and record["agreement"] >= 0.99, record
