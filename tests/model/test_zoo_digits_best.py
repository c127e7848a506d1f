"""recipes/digits_best.yaml, trained as shipped, clears 0.99 on digits' held-out test split."""

import json
from pathlib import Path

import pytest

from cnnctl import train
from cnnctl.recipe import load_recipe

RECIPE = Path(__file__).parents[2] / "recipes" / "digits_best.yaml"


@pytest.mark.slow
def test_digits_best_reaches_99_percent_on_the_test_split(tmp_path):
    recipe = load_recipe(str(RECIPE))  # the file unchanged: its epochs, its seed, its split
    assert (recipe.data.source, recipe.data.split.validation, recipe.data.split.test) == ("digits", 0.1, 0.2)
    run = train(recipe, runs_dir=tmp_path, progress=False).run.path
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    assert metrics["examples"]["test"] == 360  # the same 20 % split as digits_cnn
    assert metrics["test"]["accuracy"] >= 0.99, metrics["test"]  # at most 3 of the 360 wrong
