"""The checks that hold a recipe against its data before training, and what their messages tell a user to change."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from cnnctl.cli import main
from cnnctl.errors import RecipeError
from cnnctl.model import build
from cnnctl.recipe import load_recipe_text
from cnnctl.training.preflight import check_training, prepare
from tests.datafiles import write_tfrecord

DENSE = "{Dense: {units: 10, activation: softmax}}"


def _problem(text: str, *, data: bool = True) -> str:
    recipe = load_recipe_text(text, "r.yaml")
    with pytest.raises(RecipeError) as info:
        prepare(recipe) if data else check_training(build(recipe).model, recipe)
    (problem,) = info.value.problems
    return str(problem)


def test_an_output_without_flatten_is_caught_by_check_without_data():
    text = ("name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n    - Conv2D: {filters: 4, kernel_size: 3}\n"
            "    - Dense: {units: 10, activation: softmax}\n")
    message = _problem(text, data=False)
    assert message.startswith("r.yaml:6:7: model.layers[1]:")  # the last layer, not train.loss
    assert "gives (6, 6, 10) per example" in message and "add Flatten or GlobalAveragePooling2D" in message


def test_a_crop_that_changes_the_shape_is_named_as_the_cause():
    text = ("name: t\ndata:\n  augment: [{RandomCrop: {height: 6, width: 6}}]\n"
            f"model: {{input: [8, 8, 1], layers: [Flatten, {DENSE}]}}\n")
    message = _problem(text)
    assert "the data is [8, 8, 1] as decoded and data.augment makes it [6, 6, 1]" in message
    assert "image_size" not in message


def test_the_class_count_message_names_the_classes():
    text = "name: t\nmodel: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 4, activation: softmax}}]}\n"
    message = _problem(text)
    assert "the data has 10 classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9); give its last layer 10 units" in message


def test_a_float_tfrecord_feature_of_the_wrong_shape_points_at_the_feature_spec(tmp_path):
    write_tfrecord(tmp_path / "d.tfrecord", count=60, encoded=False, gzip=False)
    text = (f"name: t\ndata:\n  source: tfrecord\n  path: {tmp_path / 'd.tfrecord'}\n"
            "  features: {image: {dtype: float32, shape: [64]}, label: {dtype: int64}}\n"
            f"model: {{input: [8, 8, 1], layers: [Flatten, {DENSE}]}}\n")
    message = _problem(text)
    assert "set the shape of the image feature in data.features to [8, 8, 1]" in message
    assert "image_size" not in message


def test_tfrecord_splits_have_a_known_length(tmp_path):
    """Keras warns that the input "ran out of data" at the end of an epoch of unknown length."""
    import tensorflow as tf

    from tests.conftest import datasets_of

    write_tfrecord(tmp_path / "d.tfrecord.gz", count=100)
    recipe = load_recipe_text(
        f"name: t\ndata:\n  source: tfrecord\n  path: {tmp_path / 'd.tfrecord.gz'}\n  batch_size: 16\n"
        "  features: {image: {dtype: string}, label: {dtype: int64}}\n  image_size: [8, 8]\n"
        f"  color_mode: grayscale\nmodel: {{input: [8, 8, 1], layers: [Flatten, {DENSE}]}}\n")
    data = datasets_of(recipe)
    for split, size in data.sizes.items():
        assert int(data[split].cardinality()) == math.ceil(size / 16) != int(tf.data.UNKNOWN_CARDINALITY)
        assert sum(len(y) for _, y in data[split]) == size


def test_check_data_makes_the_checks_train_makes(tmp_path):
    """A class weight for a class the data does not have is refused by check --data, not first by train."""
    path = tmp_path / "r.yaml"
    path.write_text(f"name: t\nmodel: {{input: [8, 8, 1], layers: [Flatten, {DENSE}]}}\n"
                    "train:\n  class_weight: {\"0\": 1.0, nine: 5.0}\n")  # names need the data
    result = CliRunner().invoke(main, ["check", str(path), "--data"])
    assert result.exit_code == 2, result.output
    assert f"{path}:4:" in result.output and "train.class_weight" in result.output


def test_fractional_number_labels_are_refused_at_data_y(tmp_path):
    import numpy as np

    x = np.zeros((40, 8, 8, 1), "float32")
    y = np.arange(40) % 4 + np.where(np.arange(40) == 7, 0.5, 0.0)  # one label is 3.5
    np.savez(tmp_path / "d.npz", x=x, y=y)
    text = (f"name: t\ndata: {{source: npz, path: {tmp_path / 'd.npz'}}}\n"
            "model: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 4, activation: softmax}}]}\n")
    message = _problem(text)
    assert "data.y" in message and "3.5 is not a whole number" in message


def test_every_key_the_source_does_not_read_is_named(write_recipe):
    path = write_recipe("name: t\ndata: {source: csv, path: x.csv, image_size: [8, 8], color_mode: rgb}\n"
                        f"model: {{input: [64], layers: [{DENSE}]}}\n")
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 2
    assert "does not read color_mode" in result.output and "nor image_size" in result.output


def test_a_lone_example_of_a_class_is_named_when_the_split_cannot_be_stratified(capsys):
    import numpy as np

    from cnnctl.data.pipeline import split_indices

    y = np.array([0] * 20 + [1] * 20 + [2])
    parts = split_indices(y, 0.1, 0.2, seed=0, class_names=["cat", "dog", "fox"])
    assert sum(len(p) for p in parts.values()) == 41
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "class 'fox' has a single example" in err


def test_a_crop_larger_than_the_images_warns(capsys):
    text = ("name: t\ndata:\n  augment: [{RandomCrop: {height: 10, width: 10}}]\n"
            f"model: {{input: [10, 10, 1], layers: [Flatten, {DENSE}]}}\n")
    prepare(load_recipe_text(text, "r.yaml"))
    assert "RandomCrop 10x10 is larger than the 8x8 images" in capsys.readouterr().err


def test_train_announces_the_run_only_after_the_recipe_passed(write_recipe, tmp_path):
    bad = write_recipe("name: t\nmodel: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 3}}]}\n")
    result = CliRunner().invoke(main, ["train", str(bad), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "training t" not in result.output
    assert not (tmp_path / "runs").exists()


def test_the_shape_hint_names_only_the_setting_that_differs(tmp_path):
    from tests.datafiles import write_image_dir

    root = write_image_dir(tmp_path / "img", count=30, classes=3, size=8)
    base = (f"name: t\ndata: {{source: image_dir, path: {root}, image_size: [8, 8], color_mode: grayscale}}\n"
            "model: {input: [8, 8, 3], layers: [Flatten, {Dense: {units: 3, activation: softmax}}]}\n")
    message = _problem(base)
    assert "set data.color_mode: rgb, or change" in message and "image_size" not in message
    message = _problem(base.replace("input: [8, 8, 3]", "input: [12, 12, 1]"))
    assert "set data.image_size: [12, 12], or change" in message and "color_mode" not in message


def _npz_recipe(tmp_path, labels, units: int, loss: str = "sparse_categorical_crossentropy",
                activation: str = "softmax") -> str:
    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((len(labels), 8, 8, 1), "float32"), y=np.asarray(labels))
    return (f"name: t\ndata: {{source: npz, path: {tmp_path / 'd.npz'}}}\n"
            f"model: {{input: [8, 8, 1], layers: [Flatten, {{Dense: {{units: {units}, activation: {activation}}}}}]}}\n"
            f"train: {{loss: {loss}}}\n")


def test_a_binary_loss_on_three_classes_is_refused_before_training(tmp_path):
    """Keras trains a sigmoid on labels 0, 1, 2 without a complaint: the label 2 is silently wrong."""
    message = _problem(_npz_recipe(tmp_path, [0, 1, 2] * 20, 1, "binary_crossentropy", "sigmoid"))
    assert "train.loss" in message and "binary_crossentropy, which takes labels 0 and 1" in message
    assert "the data has 3 classes (0, 1, 2)" in message and "sparse_categorical_crossentropy" in message


def test_a_binary_loss_on_several_units_is_refused(tmp_path):
    message = _problem(_npz_recipe(tmp_path, [0, 1] * 30, 2, "binary_crossentropy", "sigmoid"))
    assert "model.layers[1]" in message and "gives 2 values" in message and "1 unit (sigmoid)" in message


def test_labels_counted_from_one_are_pointed_out(tmp_path):
    message = _problem(_npz_recipe(tmp_path, [1, 2, 3, 4] * 15, 4))
    assert "gives 4 values but the data has 5 classes (0, 1, 2, 3, 4)" in message
    assert "this class has no examples (0): check the labels (class indices count from 0)" in message
