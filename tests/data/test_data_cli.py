"""The data side through the `cnnctl` command: schema errors, check --data, paths.

Each case writes its own data (tests/datafiles.py) into a user's project folder and
runs the command from another directory, as a user with a recipe elsewhere would.
The command runs in-process (CliRunner, the working directory set with monkeypatch.chdir);
the offline Keras datasets are in test_keras_datasets.py, in processes of their own.
Schema errors exit before TensorFlow loads (well under a second); anything that
loads data imports TensorFlow and is marked slow. xfail(strict) cases are bugs.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from cnnctl.recipe import load_recipe
from tests import datafiles as files
from tests.conftest import cli

COUNTS = {"cat": 20, "dog": 30, "fish": 25}  # 75 images, a little imbalanced (1.5x)

RECIPE = """\
name: pets
seed: 7
data:
  source: image_dir
  path: photos
  image_size: [16, 16]
  color_mode: grayscale
  batch_size: 16
model:
  input: [16, 16, 1]
  layers:
    - Flatten
    - Dense: {units: 3, activation: softmax}
train: {epochs: 1}
log: {tensorboard: false}
"""
DENSE_LINE = 13  # the last layer, where a wrong number of units is reported


def with_data(*lines: str) -> str:
    """RECIPE with more data keys (after batch_size)."""
    return RECIPE.replace("  batch_size: 16\n", "  batch_size: 16\n" + "".join(f"  {line}\n" for line in lines))


def project(root: Path, counts: dict[str, int] = COUNTS, recipe: str = RECIPE) -> Path:
    """root/project/recipe.yaml and root/project/photos/<class>/*.png; returns the recipe file."""
    folder = root / "project"
    files.write_class_folders(folder / "photos", counts, size=16)
    path = folder / "recipe.yaml"
    path.write_text(recipe)
    return path


def elsewhere(root: Path) -> Path:
    folder = root / "elsewhere"
    folder.mkdir(exist_ok=True)
    return folder


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def run_in(cwd: Path, monkeypatch, *args: str):
    """``cnnctl ARGS`` in-process from ``cwd``: click's Result, with ``returncode`` as run_cli's has it."""
    monkeypatch.chdir(cwd)
    result = cli(*args)
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)  # else: a traceback
    result.returncode = result.exit_code
    return result


# --- schema: rejected before any data is read ----------------------------------------------------


def _data_recipe(data: str) -> str:
    body = textwrap.indent(textwrap.dedent(data).strip("\n"), "  ")
    return f"name: t\ndata:\n{body}\nmodel: {{input: [8, 8, 1], layers: [Flatten]}}\n"


@pytest.mark.parametrize("data, where, message", [
    ("source: npz\npath: d.npz\nimage_size: [8, 8]\n", "recipe.yaml:5:3: data.image_size",
     "source 'npz' does not read image_size (it is read by image_dir, tfds, tfrecord)"),
    ("source: tfrecord\npath: d.tfrecord\n", "recipe.yaml:3:11: data.source",
     "source 'tfrecord' needs data.features"),
    ("source: synthetic\nclasses: 3\n", "recipe.yaml:3:11: data.source", "source 'synthetic' needs data.shape"),
    ("source: imagedir\npath: photos\n", "recipe.yaml:3:11: data.source",
     "unknown data source 'imagedir' (did you mean 'image_dir'?)"),
    ("source: digits\nshape: [8, 8, 1]\n", "recipe.yaml:4:3: data.shape", "source 'digits' does not read shape"),
], ids=["key-of-another-source", "tfrecord-without-features", "synthetic-without-shape", "unknown-source",
        "digits-with-shape"])
def test_schema_errors_exit_2_at_the_line(tmp_path, data, where, message, monkeypatch):
    (tmp_path / "recipe.yaml").write_text(_data_recipe(data))
    result = run_in(tmp_path, monkeypatch, "check", "recipe.yaml", "--data")
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {where}: "), first
    assert message in first
    no_traceback(result)


# --- check --data --------------------------------------------------------------------------------


def _table(stdout: str) -> dict[str, list[int]]:
    """The split rows of check's data table: {split: [examples, per-class counts...]}."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in ("train", "validation", "test") and cells[1:] and cells[1].isdigit():
            rows[cells[0]] = [int(c) for c in cells[1:]]
    return rows


@pytest.mark.slow
def test_check_data_on_an_image_folder_from_another_directory(tmp_path, monkeypatch):
    recipe = project(tmp_path)
    # path: photos, next to the recipe
    result = run_in(elsewhere(tmp_path), monkeypatch, "check", str(recipe), "--data")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("split"))
    assert header.split() == ["split", "examples", "cat", "dog", "fish"]
    table = _table(result.stdout)
    assert set(table) == {"train", "validation", "test"}
    assert sum(row[0] for row in table.values()) == 75
    assert [sum(row[i] for row in table.values()) for i in (1, 2, 3)] == list(COUNTS.values())
    assert all(row[0] == sum(row[1:]) for row in table.values())
    assert table["test"][0] == 15 and table["validation"][0] == 8  # 20 % of 75; 10 % (of the rest, rounded up)
    assert "examples: stored (16, 16, 1) uint8; the model gets (16, 16, 1) float32" in result.stdout
    assert "classes: 3" in result.stdout
    assert "warning" not in result.stderr  # 1.5x is not worth a warning

    result = run_in(elsewhere(tmp_path), monkeypatch, "check", str(recipe), "--data", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)["data"]
    assert data["classes"] == list(COUNTS)
    assert data["sizes"] == {split: row[0] for split, row in table.items()}
    assert data["class_counts"] == {split: row[1:] for split, row in table.items()}
    assert data["element"] == {"shape": [16, 16, 1], "dtype": "float32"}
    assert data["stored"] == {"shape": [16, 16, 1], "dtype": "uint8"}
    assert data["label"] == {"dtype": "int32"}
    assert data["imbalance"] == pytest.approx(1.5, abs=0.1)


@pytest.mark.slow
def test_check_data_rejects_an_output_size_that_is_not_the_class_count(tmp_path, monkeypatch):
    recipe = project(tmp_path)
    result = run_in(tmp_path, monkeypatch, "check", str(recipe), "--data", "--set", "model.layers[1].Dense.units=5")
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {recipe}:{DENSE_LINE}:"), first
    assert "gives 5 values but the data has 3 classes" in first and "give its last layer 3 units" in first
    no_traceback(result)


@pytest.mark.slow
def test_check_data_warns_about_imbalanced_classes(tmp_path, monkeypatch):
    recipe = project(tmp_path, counts={"cat": 60, "dog": 10, "fish": 30})
    result = run_in(tmp_path, monkeypatch, "check", str(recipe), "--data")
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if "imbalanced" in line)
    assert warning.startswith("warning: the training classes are imbalanced: 'cat' has 6.")
    assert "of 'dog'" in warning and "class_weight: balanced" in warning


@pytest.mark.slow
def test_the_imbalance_advice_is_a_recipe_key(tmp_path, monkeypatch):
    # The advice, taken word for word from the warning as a --set, is a key check takes and that weights the
    # classes: the warning it answers is gone, and the weights (by index) reach the recipe train uses.
    recipe = project(tmp_path, counts={"cat": 60, "dog": 10, "fish": 30})
    warned = run_in(tmp_path, monkeypatch, "check", str(recipe), "--data")
    warning = next(line for line in warned.stderr.splitlines() if "imbalanced" in line)
    key, value = re.search(r"consider ([\w.]+): (\w+)$", warning).groups()
    assert (key, value) == ("train.class_weight", "balanced")
    advised = run_in(tmp_path, monkeypatch, "check", str(recipe), "--data", "--set", f"{key}={value}", "--json")
    assert advised.returncode == 0, advised.stderr
    assert "imbalanced" not in advised.stderr and json.loads(advised.stdout)["warnings"] == []
    assert json.loads(advised.stdout)["data"]["imbalance"] == pytest.approx(6.0, rel=0.2)  # the same data
    from cnnctl.training.preflight import prepare

    plan = prepare(load_recipe(str(recipe), [f"{key}={value}"]))  # what train fits with
    counts = plan.data.class_counts["train"]
    weighted = [plan.class_weight[c] * counts[c] for c in range(3)]  # balanced: each class weighs the same
    assert counts.max() / counts.min() > 5 and weighted == pytest.approx([counts.sum() / 3] * 3)


# --- unreadable images ---------------------------------------------------------------------------


def _with_truncated_png(tmp_path: Path, on_error: str) -> Path:
    recipe = project(tmp_path, recipe=with_data(f"on_error: {on_error}"))
    whole = (recipe.parent / "photos" / "cat" / "0000.png").read_bytes()
    (recipe.parent / "photos" / "cat" / "broken.png").write_bytes(whole[: len(whole) // 2])  # valid signature
    return recipe


@pytest.mark.slow
def test_check_data_lists_a_truncated_image(tmp_path, monkeypatch):
    recipe = _with_truncated_png(tmp_path, "fail")
    result = run_in(tmp_path, monkeypatch, "check", str(recipe), "--data")
    assert result.returncode == 2, result.stderr
    assert "1 image file cannot be decoded" in result.stderr
    assert str(recipe.parent / "photos" / "cat" / "broken.png") in result.stderr
    no_traceback(result)


@pytest.mark.slow
def test_train_lists_a_truncated_image_instead_of_a_traceback(tmp_path, monkeypatch):
    recipe = _with_truncated_png(tmp_path, "fail")
    result = run_in(tmp_path, monkeypatch, "train", str(recipe), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2
    no_traceback(result)
    assert "broken.png" in result.stderr


@pytest.mark.slow
def test_check_data_with_skip_counts_only_the_images_it_keeps(tmp_path, monkeypatch):
    recipe = _with_truncated_png(tmp_path, "skip")
    result = run_in(tmp_path, monkeypatch, "check", str(recipe), "--data", "--json")
    assert result.returncode == 0, result.stderr
    assert "1 image file cannot be decoded" in result.stderr and "left out" in result.stderr
    assert "broken.png" in result.stderr
    assert sum(json.loads(result.stdout)["data"]["sizes"].values()) == 75


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_set_data_path_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    recipe = project(tmp_path)  # project/photos has 75 images
    here = elsewhere(tmp_path)
    files.write_class_folders(here / "photos", {"cat": 10, "dog": 10, "fish": 10})  # ./photos has 30
    result = run_in(here, monkeypatch, "check", str(recipe), "--data", "--json", "--set", "data.path=photos")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["data"]
    assert sum(report["sizes"].values()) == 30
    assert report["source"].startswith(f"image_dir {here / 'photos'} ")


def test_set_data_path_dict_is_relative_to_the_current_directory(tmp_path, monkeypatch):
    from cnnctl.recipe import load_recipe

    recipe = project(tmp_path, recipe=RECIPE.replace("source: image_dir", "source: npz")
                     .replace("  image_size: [16, 16]\n  color_mode: grayscale\n", ""))
    here = elsewhere(tmp_path)
    monkeypatch.chdir(here)
    loaded = load_recipe(str(recipe), ["data.path={train: a.npz, test: b.npz}"])
    assert loaded.data.path == {"train": str(here / "a.npz"), "test": str(here / "b.npz")}
    assert load_recipe(str(recipe), ["data.path=a.npz"]).data.path == str(here / "a.npz")  # as a string does


@pytest.mark.slow
def test_a_run_stores_absolute_data_paths_and_evaluates_from_anywhere(tmp_path, monkeypatch):
    recipe = project(tmp_path, recipe=with_data("cache: cache/pets"))
    runs = tmp_path / "runs"
    result = run_in(elsewhere(tmp_path), monkeypatch, "train", str(recipe), "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (runs / "pets").iterdir()
    stored = yaml.safe_load((run / "recipe.yaml").read_text())["data"]
    assert stored["path"] == str(recipe.parent / "photos")  # absolute: relative to the recipe file
    assert stored["cache"] == str(recipe.parent / "cache" / "pets")
    assert any(p.name.startswith("pets-train") for p in (recipe.parent / "cache").iterdir())
    third = tmp_path / "third"
    third.mkdir()
    result = run_in(third, monkeypatch, "eval", str(run), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads(result.stdout)
    trained = json.loads((run / "metrics.json").read_text())
    assert evaluated["examples"] == trained["examples"]["test"] == 15
    assert evaluated["metrics"]["accuracy"] == pytest.approx(trained["test"]["accuracy"], abs=1e-6)


@pytest.mark.slow
def test_a_standardized_run_evaluates_to_its_training_metrics(tmp_path, monkeypatch):
    """eval must standardize with the training split's statistics, as training did (see data.json)."""
    recipe = project(tmp_path, recipe=with_data("normalize: standardize"))
    runs = tmp_path / "runs"
    result = run_in(tmp_path, monkeypatch, "train", str(recipe), "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (runs / "pets").iterdir()
    result = run_in(tmp_path, monkeypatch, "eval", str(run), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    no_traceback(result)
    trained = json.loads((run / "metrics.json").read_text())
    evaluated = json.loads(result.stdout)["metrics"]
    assert evaluated["accuracy"] == pytest.approx(trained["test"]["accuracy"], abs=1e-6)
    assert evaluated["loss"] == pytest.approx(trained["test"]["loss"], rel=1e-4)
