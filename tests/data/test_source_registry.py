"""A data source is one declaration: registered from this test module, a recipe names it, and it trains.

The ``ramp`` source below is all a new source takes (in cnnctl it would be one file of
``cnnctl/data/sources/``): its name, the ``data:`` keys it reads and needs, and a loader.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnctl
from cnnctl.data.sources import Source, array_examples
from cnnctl.errors import RecipeError
from cnnctl.recipe import load_recipe_text
from cnnctl.registry import SOURCES


def load_ramp(spec, seed):
    """``count`` rows of 4 features; the class is whether their mean is above one half (learnable by one Dense)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (spec.count, 4)).astype("float32")
    y = (x.mean(axis=1) > 0.5).astype("int32")
    return array_examples({"all": (x, y)}, ["low", "high"], f"ramp ({spec.count} rows)")


RECIPE = """
name: ramp
data: {source: ramp, count: 400, batch_size: 32}
model:
  input: [4]
  layers:
    - Dense: {units: 2, activation: softmax}
train:
  epochs: 30
  optimizer: {Adam: {learning_rate: 0.05}}
"""


@pytest.fixture
def ramp():
    SOURCES.register(Source(name="ramp", keys=("count",), load=load_ramp))
    yield
    SOURCES.unregister("ramp")


def test_a_registered_source_is_named_in_a_recipe_and_trains(ramp, tmp_path):
    result = cnnctl.train(load_recipe_text(RECIPE, "ramp.yaml"), runs_dir=tmp_path / "runs", progress=False)
    metrics = result.metrics
    assert metrics["status"] == "completed"
    assert metrics["examples"] == {"train": 280, "validation": 40, "test": 80}  # split as every source is
    assert metrics["test"]["accuracy"] >= 0.9  # a straight line separates the classes
    record = result.run.read_json("data.json")
    assert record["source"] == "ramp (400 rows)" and record["class_names"] == ["low", "high"]
    # the run reads its data again through the registry: eval measures what training measured
    assert cnnctl.evaluate(result.run).metrics["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)


def test_a_registered_source_has_its_keys_checked_like_a_built_in_one(ramp):
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(RECIPE.replace("count: 400", "count: 400, path: x.npz"), "ramp.yaml")
    assert "source 'ramp' does not read path (it is read by" in str(caught.value)
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(RECIPE.replace("source: ramp", "source: rmap"), "ramp.yaml")
    assert "unknown data source 'rmap' (did you mean 'ramp'?)" in str(caught.value)


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="data source 'npz' is registered already"):
        SOURCES.register(Source(name="npz", load=load_ramp))
