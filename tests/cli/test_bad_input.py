"""Wrong input of every kind through the real commands: exit 2 and one message saying what is wrong, where,
and what to do; never a traceback, and for train never a run directory.

A real run over a folder of PNGs (trained here) is evaluated and predicted with broken
images, wrong files where the model goes, folders that are not runs, and data whose
classes the model does not have. Commands run in-process (CliRunner).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests import datafiles as files
from tests.conftest import cli, invoke, invoke_fails

pytestmark = pytest.mark.slow

RECIPE = """\
name: shapes
seed: 3
data: {source: image_dir, path: photos, image_size: [12, 12], split: {validation: 0.2, test: 0.2}, batch_size: 16}
model:
  input: [12, 12, 3]
  layers: [Flatten, {Dense: {units: 3, activation: softmax}}]
train: {epochs: 1}
log: {tensorboard: false}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """(project folder with photos/ and recipe.yaml, a run trained on it)."""
    root = tmp_path_factory.mktemp("project")
    files.write_image_dir(root / "photos", count=90, classes=3, size=12, mode="RGB", formats=("png",))
    (root / "recipe.yaml").write_text(RECIPE)
    from cnnctl import train
    from cnnctl.recipe import load_recipe

    return root, train(load_recipe(str(root / "recipe.yaml")), runs_dir=root / "runs", progress=False).run.path


BROKEN = {
    "empty": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],  # a PNG signature: only decoding finds it
    "text": lambda good: b"this is not an image\n",
}


def broken_copy(project, tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """(a copy of the photos with one broken .png in one/, that file)."""
    root, _ = project
    photos = Path(shutil.copytree(root / "photos", tmp_path / "photos"))
    good = next((photos / "one").iterdir()).read_bytes()
    bad = photos / "one" / "zz-broken.png"
    bad.write_bytes(BROKEN[kind](good))
    return photos, bad


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_image_stops_training_before_a_run_exists(project, tmp_path, kind):
    _, bad = broken_copy(project, tmp_path, kind)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    error = invoke_fails("train", str(tmp_path / "recipe.yaml"), "--runs-dir", str(tmp_path / "runs"))
    assert "1 image file cannot be decoded" in error and str(bad) in error and "data.on_error: skip" in error
    assert "training shapes in" not in error
    assert not list((tmp_path / "runs").glob("*/*"))  # found while listing, not an epoch later


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_image_in_eval_data_is_named_without_a_traceback(project, tmp_path, kind):
    _, run = project
    photos, bad = broken_copy(project, tmp_path, kind)
    error = invoke_fails("eval", str(run), "--data", str(photos))
    assert str(bad) in error and "cannot be decoded" in error
    assert "on_error" not in error  # eval --data DIR has no recipe whose key could be set


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_broken_image_given_to_predict_is_named(project, tmp_path, kind):
    _, run = project
    photos, bad = broken_copy(project, tmp_path, kind)
    for given in (bad, photos / "one"):
        error = invoke_fails("predict", str(run), str(given))
        assert str(bad) in error and "--on-error skip" in error


def _wrong_models(project, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (a path given where a run or model goes, a phrase of its message)."""
    root, run = project
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    text = tmp_path / "text.keras"
    text.write_text("not a zip")
    whole = (run / "model.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(whole[: len(whole) // 2])
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (tmp_path / "nothing").mkdir()
    return {
        "txt": (notes, "is text, not a Keras model"),
        "recipe": (root / "recipe.yaml", "is a recipe, not a model; train it first"),
        "image": (next((root / "photos" / "one").iterdir()), "is a PNG image, not a model; give the model first"),
        "image folder": (root / "photos", "is a folder of images, not a run directory"),
        "empty folder": (tmp_path / "nothing", "is not a run directory"),
        "empty .keras": (empty, "is empty, not a Keras model"),
        "text .keras": (text, "is text, not a Keras model"),
        "truncated .keras": (cut, "is a truncated .keras archive"),
        "hdf5": (h5, "is a legacy HDF5 Keras model"),
    }


def test_wrong_files_given_as_the_model_are_named_for_what_they_are(project, tmp_path):
    example = tmp_path / "x.npy"
    np.save(example, np.zeros((12, 12, 3), "float32"))
    for name, (path, phrase) in _wrong_models(project, tmp_path).items():
        for args in (["eval", str(path)], ["predict", str(path), str(example)]):
            assert phrase in invoke_fails(*args), (name, args)


def test_export_takes_a_run_and_says_what_it_was_given_instead(project, tmp_path):
    root, run = project
    assert "is a recipe, not a run directory" in invoke_fails("export", "keras", str(root / "recipe.yaml"))
    assert "is a folder of images" in invoke_fails("export", "keras", str(root / "photos"))
    message = invoke_fails("export", "keras", str(run / "model.keras"))
    assert f"is a file of the run {run}" in message and "not a run directory" in message


def test_a_project_folder_holding_a_recipe_is_not_taken_for_a_run(project, tmp_path):
    root, run = project
    folder = tmp_path / "proj"
    folder.mkdir()
    shutil.copy(root / "recipe.yaml", folder / "recipe.yaml")
    shutil.copy(run / "model.keras", folder / "mine.keras")
    assert "holds a recipe.yaml but none of the files training writes" in invoke_fails("eval", str(folder))
    # a model file beside a recipe is a model of its own, not a run's: it needs --data
    assert "is not inside a run, so it has no data of its own" in invoke_fails("eval", str(folder / "mine.keras"))


def test_a_run_without_its_model_says_why_and_what_to_do(project, tmp_path):
    _, run = project
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    (copy / "best.keras").unlink()
    assert "has no best.keras" in invoke_fails("eval", str(copy), "--best")
    (copy / "model.keras").unlink()
    metrics = json.loads((copy / "metrics.json").read_text())
    image = next((project[0] / "photos" / "one").iterdir())
    for status, said in [("interrupted", "its training was interrupted"), ("failed", "its training failed")]:
        (copy / "metrics.json").write_text(json.dumps({**metrics, "status": status}))
        for command in (["eval", str(copy)], ["predict", str(copy), str(image)]):
            message = invoke_fails(*command)
            assert f"has no model.keras: {said}; resume it with cnnctl train --resume {copy}" in message, command


def test_a_model_of_its_own_with_fewer_classes_than_the_data(project, tmp_path):
    root, run = project
    lone = tmp_path / "lone.keras"
    shutil.copy(run / "model.keras", lone)  # 3 outputs, no labels.txt beside it
    photos = Path(shutil.copytree(root / "photos", tmp_path / "four"))
    shutil.copytree(photos / "one", photos / "four")
    other = tmp_path / "other.yaml"
    other.write_text(textwrap.dedent(f"""\
        name: other
        data: {{source: image_dir, path: {photos}, image_size: [12, 12], split: {{validation: 0, test: 0}}}}
        model: {{input: [12, 12, 3], layers: [Flatten, {{Dense: {{units: 4}}}}]}}
        """))
    message = invoke_fails("eval", str(lone), "--data", str(other), "--split", "train")
    assert "has 4 classes (four, one, two, zero)" in message and "scores 3" in message
    message = invoke_fails("eval", str(lone), "--data", str(photos))  # the folder itself, as predict takes images
    assert "has 4 classes (four, one, two, zero)" in message and "scores 3" in message


def test_labels_beyond_the_models_units_stop_training_before_a_run_exists(tmp_path):
    table = files.write_csv(tmp_path / "d.csv", count=120, classes=4)
    rows = table.read_text().splitlines()
    rows[5] = rows[5].rsplit(",", 1)[0] + ",17"  # one mistyped label
    table.write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: t\ndata: {{source: csv, path: {table}, reshape: [8, 8, 1]}}\n"
                      "model: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 4, activation: softmax}}]}\n"
                      "train: {epochs: 1}\nlog: {tensorboard: false}\n")
    error = invoke_fails("train", str(recipe), "--runs-dir", str(tmp_path / "runs"))
    assert "gives 4 values but the data has 18 classes" in error
    assert "13 of these classes have no examples (4, 5, 6, 7, 8, 9 ...): check the labels" in error
    assert not (tmp_path / "runs").exists()


def test_a_data_path_that_does_not_exist_names_the_closest_one(project, tmp_path):
    root, _ = project
    error = invoke_fails("check", str(root / "recipe.yaml"), "--data", "--set", f"data.path={root / 'photoz'}")
    assert f"{root / 'photoz'} does not exist (did you mean '{root / 'photos'}'?)" in error
    assert "no such recipe or folder (--data)" in invoke_fails("eval", "latest", "--data", str(root / "photoz"))


def test_an_export_that_exists_is_not_replaced_without_force(project, tmp_path):
    _, run = project
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    invoke("export", "tflite", str(copy))
    error = invoke_fails("export", "tflite", str(copy))
    assert f"{copy / 'export' / 'model.tflite'} exists; use --force" in error
    assert cli("export", "tflite", str(copy), "--force").exit_code == 0


def test_an_image_damaged_inside_is_named_by_export_and_eval_of_the_run(project, tmp_path):
    """Its header and end are intact, so only decoding finds it: mid-check, not when the folder is listed."""
    import yaml

    root, run = project
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    photos = Path(shutil.copytree(root / "photos", tmp_path / "photos"))
    recipe = yaml.safe_load((copy / "recipe.yaml").read_text())
    recipe["data"]["path"] = str(photos)  # the run's data, moved: every image of it is in a held-out split or train
    (copy / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    damaged = []
    for image in sorted(photos.rglob("*.png")):
        data = bytearray(image.read_bytes())
        data[len(data) // 2: len(data) // 2 + 20] = b"\xff" * 20
        image.write_bytes(bytes(data))
        damaged.append(str(image))
    for args in (["export", "tflite", str(copy)], ["eval", str(copy)]):
        error = invoke_fails(*args)
        assert "90 image files cannot be decoded" in error and damaged[0] in error, (args, error)
    assert not list((copy / "export").glob("*"))  # nothing written (the folder may have been made)
