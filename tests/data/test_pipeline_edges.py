"""Edge cases of the data stage: stale caches, reproducible augmentation, and mistakes that must be exit 2."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cnnctl.data.report import data_report
from cnnctl.errors import RecipeError, UserError
from cnnctl.recipe import load_recipe_text
from cnnctl.training.preflight import prepare
from tests.conftest import datasets_of
from tests.datafiles import write_image_dir, write_npz

MODEL = "model: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 3, activation: softmax}}]}\n"


def recipe(data: str, model: str = MODEL):
    return load_recipe_text(f"name: t\ndata:\n{data}{model}", "r.yaml")


def labels_by_file(data, split="train") -> list[int]:
    return sorted(int(v) for _, y in data[split] for v in y.numpy())


def test_a_file_cache_is_not_reused_after_an_image_moves_to_another_class(tmp_path):
    root = write_image_dir(tmp_path / "img", count=60, classes=3, size=8)
    text = (f"  source: image_dir\n  path: {root}\n  image_size: [8, 8]\n  color_mode: grayscale\n"
            f"  cache: {tmp_path / 'cache' / 'c'}\n  split: {{validation: 0, test: 0}}\n")
    before = labels_by_file(datasets_of(recipe(text)))
    moved = sorted((root / "zero").iterdir())[:3]
    for path in moved:
        shutil.move(str(path), root / "one" / path.name)
    after = labels_by_file(datasets_of(recipe(text)))
    # classes sort as one (0), two (1), zero (2): three examples move from class 2 to class 0
    assert (after.count(0), after.count(2)) == (before.count(0) + 3, before.count(2) - 3)


def test_augmentation_is_the_same_for_the_same_seed():
    text = "  batch_size: 64\n  augment: [{RandomTranslation: {height_factor: 0.2, width_factor: 0.2}}]\n"
    model = "model: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 10, activation: softmax}}]}\n"
    first = np.concatenate([x.numpy() for x, _ in datasets_of(recipe(text, model))["train"]])
    again = np.concatenate([x.numpy() for x, _ in datasets_of(recipe(text, model))["train"]])
    plain = np.concatenate([x.numpy() for x, _ in datasets_of(recipe("  batch_size: 64\n", model))["train"]])
    assert np.array_equal(first, again) and not np.array_equal(first, plain)


def test_a_class_named_twice_is_refused():
    with pytest.raises(RecipeError, match="class 'a' is named twice"):
        recipe("  source: npz\n  path: x.npz\n  class_names: [a, b, a]\n")


@pytest.mark.parametrize("data, phrase", [
    ("  source: npz\n  path: {{test: {npz}}}\n", "needs train"),
    ("  source: npz\n  path: {glob}\n", "is a pattern"),
    ("  source: image_dir\n  path: {{train: {npz}}}\n  image_size: [8, 8]\n", "is not a folder"),
])
def test_path_mistakes_are_located(tmp_path, data, phrase):
    npz = write_npz(tmp_path / "d.npz", count=30, classes=3)
    with pytest.raises(RecipeError) as info:
        datasets_of(recipe(data.format(npz=npz, glob=tmp_path / "*.npz")))
    assert phrase in str(info.value.problems[0]) and "data.path" in str(info.value.problems[0])


def test_an_npy_file_or_empty_arrays_are_explained(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8, 1)))
    with pytest.raises(UserError, match=r"single array \(\.npy\)"):
        datasets_of(recipe(f"  source: npz\n  path: {tmp_path / 'x.npy'}\n"))
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 8, 8, 1)), y=np.zeros(0, int))
    with pytest.raises(RecipeError, match="has no examples"):
        datasets_of(recipe(f"  source: npz\n  path: {tmp_path / 'empty.npz'}\n"))


def test_a_model_with_variable_image_size_accepts_the_data():
    model = ("model: {input: [null, null, 1], layers: [{Conv2D: {filters: 4, kernel_size: 3}}, "
             "GlobalAveragePooling2D, {Dense: {units: 10, activation: softmax}}]}\n")
    plan = prepare(recipe("  augment: [RandomFlip]\n", model))
    assert plan.data.element_shape == (8, 8, 1)


def test_the_imbalance_warning_names_the_smallest_class(tmp_path):
    x = np.zeros((120, 8, 8, 1), "uint8")
    y = np.array([1] * 100 + [2] * 20)  # no class 0 at all
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = datasets_of(recipe(f"  source: npz\n  path: {tmp_path / 'd.npz'}\n  class_names: [a, b, c]\n"))
    warnings = " ".join(data_report(data)["warnings"])
    assert "'b' has 5.0x the examples of 'c'" in warnings
