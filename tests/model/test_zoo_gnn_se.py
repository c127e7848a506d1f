"""The graph-network pair (digits_mlp, digits_graph) and se_resnet, from the seed articles on graph neural
networks and on dynamic networks. Each trains, as shipped, to at least the test accuracy its ``# Measured:``
line promises (``tests assert >= X``); the pair differ only in the graph layer; the trained GraphConv
spreads a pixel to its grid neighbours with the recipe's Gaussian weights, and the trained SqueezeExcite
layers rescale each channel by a gate in (0, 1) that changes from image to image.
"""

import json
import math
import re
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from cnnctl import train
from cnnctl.recipe import load_recipe

RECIPES = Path(__file__).parents[2] / "recipes"


def floor(path: Path) -> float:
    """The accuracy the recipe's ``# Measured:`` line says the tests assert."""
    (line,) = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# Measured: ")]
    match = re.search(r"tests assert >= (0\.\d+)", line)
    assert match, f"{path.name}: its # Measured: line gives no 'tests assert >= X': {line}"
    return float(match.group(1))


def train_shipped(name: str, runs_dir: Path) -> keras.Model:
    """Train ``recipes/NAME.yaml`` unchanged; assert its test accuracy reaches the floor; the saved model."""
    path = RECIPES / f"{name}.yaml"
    run = train(load_recipe(str(path)), runs_dir=runs_dir, progress=False).run.path
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= floor(path), metrics["test"]
    return keras.saving.load_model(run / "model.keras")  # safe mode: cnnctl's layers reload as themselves


def digit_images(count: int = 200) -> np.ndarray:
    """scikit-learn's digits as the `digits` source gives them: (N, 8, 8, 1), min-max scaled (0..16 -> 0..1)."""
    from sklearn.datasets import load_digits

    return (load_digits().images[:count, ..., None] / 16.0).astype("float32")


def test_the_pair_differs_only_in_the_graph_layer():
    mlp, graph = (yaml.safe_load((RECIPES / f"{n}.yaml").read_text()) for n in ("digits_mlp", "digits_graph"))
    first = graph["model"]["layers"].pop(0)
    assert list(first) == ["GraphConv"] and first["GraphConv"]["adjacency"] == "grid"
    del mlp["name"], graph["name"]
    assert graph == mlp  # data, split, seed, classifier and training: the same


@pytest.mark.slow
def test_digits_mlp_reaches_its_stated_accuracy(tmp_path):
    model = train_shipped("digits_mlp", tmp_path)
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense"]


@pytest.mark.slow
def test_digits_graph_reaches_its_stated_accuracy_through_a_gaussian_grid_graph(tmp_path):
    model = train_shipped("digits_graph", tmp_path)
    (graph,) = [layer for layer in model.layers if type(layer).__name__ == "GraphConv"]
    assert model.layers[0] is graph and graph.adjacency == "grid" and graph.connectivity == 8
    # One lit interior pixel reaches itself and its 8 neighbours, nothing further. Interior pixels all have
    # the same degree, so D^-1/2 (A + I) D^-1/2 keeps A's ratios: exp(-d^2 / sigma^2) for d = 1 and sqrt(2).
    image = np.zeros((1, 8, 8, 1), "float32")
    image[0, 3, 3, 0] = 1.0
    out = np.asarray(graph(image))[0, :, :, 0]
    reached = np.zeros((8, 8), bool)
    reached[2:5, 2:5] = True
    assert np.all(out[reached] != 0) and np.all(out[~reached] == 0)
    side, corner = math.exp(-1 / graph.sigma**2), math.exp(-2 / graph.sigma**2)
    np.testing.assert_allclose(out[2:5, 2:5] / out[3, 3], [[corner, side, corner], [side, 1, side],
                                                           [corner, side, corner]], rtol=1e-5)


@pytest.mark.slow
def test_se_resnet_reaches_its_stated_accuracy_with_input_dependent_channel_gates(tmp_path):
    model = train_shipped("se_resnet", tmp_path)
    excites = [layer for layer in model.layers if type(layer).__name__ == "SqueezeExcite"]
    assert len(excites) == 2 and sum(isinstance(layer, keras.layers.Add) for layer in model.layers) == 2
    probe = keras.Model(model.inputs, [t for layer in excites for t in (layer.input, layer.output)])
    values = [np.asarray(v, "float64") for v in probe([digit_images()], training=False)]
    for layer, x, y in zip(excites, values[::2], values[1::2], strict=True):
        # y = x * s with one gate s per image and channel: the least-squares s over the map fits exactly
        s = (x * y).sum(axis=(1, 2)) / np.maximum((x * x).sum(axis=(1, 2)), 1e-12)
        np.testing.assert_allclose(y, x * s[:, None, None, :], rtol=1e-5, atol=1e-5, err_msg=layer.name)
        assert np.all((s >= 0) & (s <= 1 + 1e-6)), layer.name  # a sigmoid gate (float32 may round to 0 or 1)
        assert s.std(axis=0).max() > 0.02, layer.name  # changes with the image (untrained: ~0.002)
