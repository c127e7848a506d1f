"""`cnnctl eval` and `cnnctl predict` on a real run over an image folder a test writes.

The run crops (RandomCrop, so evaluation centre-crops) and standardizes, so any
step of the preprocessing that eval or predict forgot, or did differently from
training, changes the numbers these tests compare. Commands run in-process
(CliRunner) except one subprocess check of the installed command.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import datafiles as files
from tests.conftest import invoke, invoke_fails, run_cli

pytestmark = pytest.mark.slow

RECIPE = """\
name: shapes
seed: 3
data:
  source: image_dir
  path: photos
  image_size: [20, 20]
  augment: [{RandomCrop: {height: 16, width: 16}}]
  normalize: standardize
  split: {validation: 0.2, test: 0.2}
  batch_size: 32
model:
  input: [16, 16, 3]
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, activation: relu}
    - MaxPooling2D
    - Flatten
    - Dense: {units: 3, activation: softmax}
train: {epochs: 8, optimizer: {Adam: {learning_rate: 0.01}}}
log: {tensorboard: false}
"""
CLASSES = ["one", "two", "zero"]  # folder names, sorted


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, Path]:
    """(project folder, run directory) of a trained 3-class run over 20x20 RGB images."""
    root = tmp_path_factory.mktemp("project")
    files.write_image_dir(root / "photos", count=300, classes=3, size=20, mode="RGB", formats=("png",))
    (root / "recipe.yaml").write_text(RECIPE)
    from cnnctl import train
    from cnnctl.recipe import load_recipe

    result = train(load_recipe(str(root / "recipe.yaml")), runs_dir=root / "runs", progress=False)
    assert result.metrics["test"]["accuracy"] > 0.6, result.metrics  # chance is 1/3: the run learned something
    return root, result.run.path


def test_eval_reports_per_class_scores_and_the_confusion_matrix(project):
    _, run = project
    report = invoke("eval", str(run), "--json")
    trained = json.loads((run / "metrics.json").read_text())
    assert report["examples"] == trained["examples"]["test"] == 60
    assert report["metrics"]["accuracy"] == pytest.approx(trained["test"]["accuracy"], abs=1e-6)
    (output,) = report["outputs"]
    cm = np.array(output["confusion_matrix"])
    assert output["classes"] == CLASSES and cm.shape == (3, 3) and cm.sum() == 60
    # Keras's accuracy metric and the matrix (from predictions) are computed apart: they must agree.
    assert np.trace(cm) / cm.sum() == pytest.approx(report["metrics"]["accuracy"], abs=1e-6)
    assert [c["support"] for c in output["per_class"]] == cm.sum(axis=1).tolist() == [20, 20, 20]
    for i, c in enumerate(output["per_class"]):
        assert c["recall"] == pytest.approx(cm[i, i] / cm[i].sum())
        assert c["precision"] == pytest.approx(cm[i, i] / cm[:, i].sum() if cm[:, i].sum() else 0.0)


def test_eval_writes_the_matrix_as_png_report_and_tensorboard_image(project):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run = project
    printed = invoke("eval", str(run), "--split", "validation")
    png = run / "eval" / "validation" / "confusion_matrix.png"
    assert f"confusion matrix: {png}" in printed
    assert "rows: true class" in printed and "macro avg" in printed
    picture = np.asarray(Image.open(png).convert("RGB"))
    assert picture.shape[0] > 60 and picture.shape[1] > 60
    stored = json.loads((run / "eval" / "validation" / "report.json").read_text())
    assert np.array(stored["outputs"][0]["confusion_matrix"]).sum() == 60
    events = EventAccumulator(str(run / "logs" / "eval"), size_guidance={"tensors": 0})
    events.Reload()
    assert "eval/validation/confusion_matrix" in events.Tags()["tensors"]
    (event,) = events.Tensors("eval/validation/confusion_matrix")
    width, height, encoded = event.tensor_proto.string_val
    assert (int(width), int(height)) == (picture.shape[1], picture.shape[0])
    import io

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")), picture)


def test_eval_on_a_folder_matches_classes_by_name(project, tmp_path):
    root, run = project
    only_two = tmp_path / "only_two"
    shutil.copytree(root / "photos" / "two", only_two / "two")
    report = invoke("eval", str(run), "--data", str(only_two), "--json")
    cm = np.array(report["outputs"][0]["confusion_matrix"])
    count = len(list((only_two / "two").iterdir()))
    assert report["examples"] == count and cm.sum() == count
    assert cm[CLASSES.index("two")].sum() == count  # every example is a true "two", whatever its folder's index
    assert (run / "eval" / "only_two" / "confusion_matrix.png").is_file()


def test_eval_on_another_recipe_maps_its_class_order(project, tmp_path):
    """The same images through a recipe that lists the classes in another order give the same matrix."""
    root, run = project
    everything = invoke("eval", str(run), "--data", str(root / "photos"), "--json")
    other = tmp_path / "other.yaml"
    other.write_text(textwrap.dedent(f"""\
        name: other
        data:
          source: image_dir
          path: {root / "photos"}
          image_size: [20, 20]
          class_names: [zero, two, one]
          split: {{validation: 0, test: 0}}
        model: {{input: [20, 20, 3], layers: [Flatten, {{Dense: {{units: 3}}}}]}}
        """))
    reordered = invoke("eval", str(run), "--data", str(other), "--split", "train", "--json")
    assert reordered["examples"] == everything["examples"] == 300
    assert reordered["outputs"][0]["confusion_matrix"] == everything["outputs"][0]["confusion_matrix"]
    assert reordered["metrics"]["accuracy"] == pytest.approx(everything["metrics"]["accuracy"], abs=1e-6)


def test_eval_refuses_unknown_classes_and_missing_data(project, tmp_path):
    root, run = project
    shutil.copytree(root / "photos" / "one", tmp_path / "mixed" / "seven")
    assert "seven is not a class of the model (one, two, zero)" in invoke_fails("eval", str(run), "--data",
                                                                        str(tmp_path / "mixed"))
    assert "no such recipe or folder (--data)" in invoke_fails("eval", str(run), "--data", str(tmp_path / "nowhere"))
    assert "no such run directory or model file" in invoke_fails("eval", str(tmp_path / "norun"))


def test_predict_gives_each_image_the_same_answer_alone_as_in_a_batch(project):
    root, run = project
    together = invoke("predict", str(run), str(root / "photos"), "--top-k", "3", "--json")["predictions"]
    assert len(together) == 300
    by_file = {p["input"]: p["outputs"]["shapes"]["top"] for p in together}
    for name in ("zero/0000.png", "one/0001.png", "two/0002.png"):
        path = str(root / "photos" / name)
        (alone,) = invoke("predict", str(run), path, "--top-k", "3", "--json")["predictions"]
        top = alone["outputs"]["shapes"]["top"]
        assert [t["class"] for t in top] == [t["class"] for t in by_file[path]]
        assert [t["probability"] for t in top] == pytest.approx([t["probability"] for t in by_file[path]], abs=1e-6)
        assert sum(t["probability"] for t in top) == pytest.approx(1.0, abs=1e-5)


def test_predict_decodes_and_preprocesses_as_training_did(project):
    """Predict's accuracy on every image equals eval's on the same folder (through the training pipeline)."""
    root, run = project
    predictions = invoke("predict", str(run), str(root / "photos"), "--top-k", "1", "--json")["predictions"]
    right = sum(Path(p["input"]).parent.name == p["outputs"]["shapes"]["top"][0]["class"] for p in predictions)
    evaluated = invoke("eval", str(run), "--data", str(root / "photos"), "--json")
    assert right / len(predictions) == pytest.approx(evaluated["metrics"]["accuracy"], abs=1e-6)
    assert {p["outputs"]["shapes"]["top"][0]["class"] for p in predictions} <= set(CLASSES)  # names, not indices


def test_predict_reads_npy_stacks_like_the_images_they_hold(project, tmp_path):
    root, run = project
    paths = [root / "photos" / "zero" / "0000.png", root / "photos" / "two" / "0002.png"]
    stack = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    np.save(tmp_path / "two.npy", stack)
    from_images = invoke("predict", str(run), *map(str, paths), "--json")["predictions"]
    from_array = invoke("predict", str(run), str(tmp_path / "two.npy"), "--json")["predictions"]
    assert [p["input"] for p in from_array] == [f"{tmp_path / 'two.npy'}[0]", f"{tmp_path / 'two.npy'}[1]"]
    for image, array in zip(from_images, from_array, strict=True):
        assert image["outputs"] == array["outputs"]
    printed = invoke("predict", str(run), str(paths[0]), "--top-k", "2")
    header, line = printed.splitlines()
    assert header.split() == ["input", "top", "1", "p", "top", "2", "p"]
    assert line.startswith(str(paths[0])) and len(line.split()) == 5  # file, then two (class, probability)


def test_predict_refuses_bad_inputs_with_one_message(project, tmp_path):
    root, run = project
    assert "did you mean" in invoke_fails("predict", str(run), str(root / "photos" / "zero" / "000.png"))
    (tmp_path / "notes.txt").write_text("hello")
    assert "cnnctl predicts on images" in invoke_fails("predict", str(run), str(tmp_path / "notes.txt"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    assert "broken.png" in invoke_fails("predict", str(run), str(tmp_path / "broken.png"))
    good = str(root / "photos" / "zero" / "0000.png")
    kept = invoke("predict", str(run), good, str(tmp_path / "broken.png"), "--on-error", "skip", "--json")
    assert [p["input"] for p in kept["predictions"]] == [good]  # the broken file left out, the good one kept
    np.save(tmp_path / "wrong.npy", np.zeros((4, 4)))
    assert "of shape [20, 20, 3]" in invoke_fails("predict", str(run), str(tmp_path / "wrong.npy"))


def test_the_installed_command_predicts_a_file(project):
    root, run = project
    result = run_cli("predict", str(run), str(root / "photos" / "one" / "0001.png"), "--json", cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    (prediction,) = json.loads(result.stdout)["predictions"]
    assert len(prediction["outputs"]["shapes"]["top"]) == 3


@pytest.mark.parametrize("args", [["predict", "latest", "nothere.png"], ["predict", "norun", "x.png"],
                                  ["eval", "norun"], ["eval", "latest", "--data", "nothere/"]])
def test_missing_paths_are_told_before_tensorflow_loads(args, tmp_path):
    import subprocess
    import sys

    code = ("import sys, atexit\natexit.register(lambda: print('tensorflow imported' if 'tensorflow' in sys.modules "
            "else 'no tensorflow', file=sys.stderr))\nfrom cnnctl.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and "no such" in result.stderr and "no tensorflow" in result.stderr, result.stderr
