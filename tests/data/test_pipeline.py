"""The digits source and the split: seeded, stratified, disjoint, scaled."""

import numpy as np

from cnnctl.data.pipeline import split_indices
from cnnctl.recipe import load_recipe_text
from tests.conftest import datasets_of

RECIPE = "name: t\ndata: {batch_size: 16}\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n"


def test_split_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(10), 100)
    first = split_indices(y, validation=0.1, test=0.2, seed=7)
    assert {k: len(v) for k, v in first.items()} == {"train": 700, "validation": 100, "test": 200}
    for part in first.values():
        assert np.all(np.bincount(y[part], minlength=10) == len(part) // 10)  # stratified
    assert len(np.unique(np.concatenate(list(first.values())))) == 1000  # disjoint and complete
    again = split_indices(y, validation=0.1, test=0.2, seed=7)
    other = split_indices(y, validation=0.1, test=0.2, seed=8)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["test"], other["test"])


def test_no_validation_or_test():
    y = np.repeat(np.arange(2), 10)
    parts = split_indices(y, validation=0.0, test=0.0, seed=0)
    assert len(parts["train"]) == 20 and len(parts["validation"]) == len(parts["test"]) == 0


def test_digits_pipeline_batches_scaled_images():
    data = datasets_of(load_recipe_text(RECIPE))
    assert sum(data.sizes.values()) == 1797
    assert data.class_names == [str(i) for i in range(10)] and data.element_shape == (8, 8, 1)
    x, y = next(iter(data["train"]))
    assert x.shape == (16, 8, 8, 1) and x.dtype.name == "float32" and y.dtype.name == "int32"
    x_all, _ = data.sample("train", data.sizes["train"])
    assert x_all.min() == 0.0 and x_all.max() == 1.0 and len(x_all) == data.sizes["train"]
    first = np.concatenate([y.numpy() for _, y in data["test"]])
    again = np.concatenate([y.numpy() for _, y in data["test"]])
    assert np.array_equal(first, again)  # the test split is not shuffled
    stream = np.concatenate([y.numpy() for _, y in data.train_epochs(0, 2)])  # what fit reads: two epochs
    epoch1, epoch2 = stream[: data.sizes["train"]], stream[data.sizes["train"]:]
    assert np.array_equal(epoch1, np.concatenate([y.numpy() for _, y in data["train"]]))
    assert not np.array_equal(epoch1, epoch2) and np.array_equal(np.sort(epoch1), np.sort(epoch2))
