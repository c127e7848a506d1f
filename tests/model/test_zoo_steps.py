"""Every built-in recipe trains: built as shipped, compiled as ``cnnctl train`` compiles it, one step on
two synthetic examples of its input shape must give a finite loss and a gradient to every trainable weight. Its
row of docs/recipes.md (parameters, multiply-adds, input) must be the built model's.

Its data need not be here (ImageNet, MNIST): random inputs and labels exercise every layer, the loss
and the optimizer. The big ImageNet networks take a few seconds each and are marked slow.
"""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnctl.model.compile import compile_model
from cnnctl.model.objects import build_loss
from cnnctl.model.zoo import figures, table_row
from cnnctl.recipe import load_recipe
from cnnctl.recipe.catalogue import COLUMNS, documented_rows, list_recipes
from tests.conftest import RECIPES, built_recipe, release_built_recipe

pytestmark = pytest.mark.xdist_group("zoo")  # one worker builds the zoo once for all three files

BIG = {"alexnet", "googlenet", "inception_v3", "mobilenet_v2", "resnet50", "vgg11", "vgg16"}  # > 3 s each


def _params(path: Path):
    return pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if path.stem in BIG else [])


def _loss_name(loss) -> str:
    name = getattr(loss, "name", None) or getattr(loss, "__name__", None) or str(loss)
    return name.lower()


def _labels(loss, shape: tuple, rng: np.random.Generator, batch: int) -> np.ndarray:
    """Labels that ``loss`` accepts for an output of ``shape`` (without the batch axis)."""
    name, units = _loss_name(loss), shape[-1] if shape else 1
    if "sparse" in name:
        return rng.integers(0, units, size=(batch, *shape[:-1]))
    if "categorical" in name:
        return keras.utils.to_categorical(rng.integers(0, units, size=(batch, *shape[:-1])), units)
    if "binary" in name or "hinge" in name:
        return rng.integers(0, 2, size=(batch, *shape)).astype("float32")
    return rng.normal(size=(batch, *shape)).astype("float32")


@pytest.mark.parametrize("path", [_params(p) for p in RECIPES])
def test_recipe_takes_one_training_step(path):
    built = built_recipe(path.stem)  # shared with the structure tests, which ran first; released below
    recipe = load_recipe(str(path))
    entry = next(e for e in list_recipes() if e["name"] == path.stem)
    documented = documented_rows().get(path.stem)
    assert documented, "run python -m cnnctl.model.zoo --write docs/recipes.md"
    assert table_row(entry, figures(built)) == [documented[c] for c in COLUMNS], "docs/recipes.md is stale"
    model = built.model
    compile_model(model, recipe)
    rng, batch = np.random.default_rng(0), 2
    x = [rng.uniform(0, 1, size=(batch, *tensor.shape[1:])).astype("float32") for tensor in model.inputs]
    losses = build_loss(recipe)
    losses = losses if isinstance(losses, list) else [losses] * len(model.outputs)
    y = [_labels(loss, tuple(out.shape[1:]), rng, batch) for loss, out in zip(losses, model.outputs, strict=True)]

    # Keras's training step (as model.train_on_batch takes it), run eagerly: tracing the step of a
    # 300-layer network as a graph takes longer than running it once
    x, y = (x if len(x) > 1 else x[0]), (y if len(y) > 1 else y[0])
    with tf.GradientTape() as tape:
        predicted = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=predicted, training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    model.optimizer.apply(grads, model.trainable_variables)

    assert np.isfinite(float(loss)), float(loss)
    unreached = [w.path for w, g in zip(model.trainable_variables, grads, strict=True)
                 if g is None or not np.any(np.asarray(g))]
    assert not unreached, f"no gradient reaches {unreached}"
    assert int(model.optimizer.iterations) == 1
    release_built_recipe(path.stem)
