"""Every built-in recipe loads and builds; those with a keras.applications twin match it."""

from pathlib import Path

import keras
import pytest

from cnnctl.model import build, check_report
from cnnctl.recipe import load_recipe

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads_and_builds(path):
    if path.stem == "resnet50":
        pytest.skip("built by test_resnet50_matches_keras_applications (slow)")
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
