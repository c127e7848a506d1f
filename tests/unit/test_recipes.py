"""Every built-in recipe loads and builds; those with a keras.applications twin match it."""

from pathlib import Path

import keras
import pytest

from cnnctl.model import build, check_report
from cnnctl.recipe import load_recipe

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads_and_builds(path):
    if path.stem in ("resnet50", "vgg16"):
        pytest.skip(f"built by test_{path.stem}_matches_keras_applications (slow)")
    report = check_report(build(load_recipe(str(path))))
    assert report["params"] > 0 and report["layers"]


@pytest.mark.slow
def test_resnet50_matches_keras_applications():
    path = next(p for p in RECIPES if p.stem == "resnet50")
    assert len(path.read_text().splitlines()) < 100
    ours = build(load_recipe(str(path)))
    theirs = keras.applications.ResNet50(weights=None)
    assert ours.model.count_params() == theirs.count_params() == 25_636_712
    assert tuple(ours.model.output.shape) == tuple(theirs.output.shape) == (None, 1000)
    kinds = [type(layer).__name__ for layer in ours.model.layers]
    assert kinds.count("Conv2D") == 53 and kinds.count("Add") == 16  # 49 + 4 projections; 16 blocks
    report = check_report(ours)
    # about 3.9 G multiply-adds per image: the "3.8 x 10^9 FLOPs" of the ResNet paper's table 1
    assert 3.8e9 < report["macs"] < 3.9e9
    assert report["receptive_field"]["size"] == [483, 483] and report["receptive_field"]["stride"] == [32, 32]


@pytest.mark.slow
def test_vgg16_matches_keras_applications():
    ours = build(load_recipe(str(next(p for p in RECIPES if p.stem == "vgg16")))).model
    theirs = keras.applications.VGG16(weights=None)
    assert ours.count_params() == theirs.count_params() == 138_357_544
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]  # layer by layer
    assert tuple(ours.output.shape) == (None, 1000)


def test_lenet5_has_the_papers_shapes_and_parameters():
    report = check_report(build(load_recipe(str(next(p for p in RECIPES if p.stem == "lenet5")))))
    assert report["params"] == 61_706  # 156 + 2,416 + 48,120 + 10,164 + 850
    shapes = [tuple(layer["output_shape"]) for layer in report["layers"]]  # without the batch axis
    assert (28, 28, 6) in shapes and (14, 14, 6) in shapes and (10, 10, 16) in shapes and (5, 5, 16) in shapes
