"""eval and predict on models whose outputs or data need care: digits stored 0-1, logits on one of two
outputs, one sigmoid unit, .keras files inside and outside a run, and inputs that are not what they say.

Each case would give plausible-looking but wrong numbers if handled like the plain case
(softmax over probabilities, 0-255 pixels for a 0-1 model, one column for a binary model).
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
from tests.conftest import invoke, invoke_fails, train_text

pytestmark = pytest.mark.slow

TWO_HEADS = """\
name: heads
seed: 5
data: {batch_size: 64}
model:
  input: [8, 8, 1]
  graph:
    conv: {Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}}
    flat: Flatten
    early: {Dense: {units: 10}, from: flat}
    hidden: {Dense: {units: 32, activation: relu}, from: flat}
    final: {Dense: {units: 10, activation: softmax}}
  outputs: [early, final]
train:
  epochs: 6
  optimizer: {Adam: {learning_rate: 3.0e-3}}
  loss: {early: {SparseCategoricalCrossentropy: {from_logits: true}}, final: sparse_categorical_crossentropy}
  metrics: [accuracy]
  monitor: null
log: {tensorboard: false}
"""

BINARY = """\
name: binary
seed: 5
data: {{source: image_dir, path: {path}, image_size: [12, 12], color_mode: grayscale, batch_size: 32}}
model:
  input: [12, 12, 1]
  layers:
    - Flatten
    - Dense: {{units: 16, activation: relu}}
    - Dense: {{units: 1, activation: sigmoid}}
train:
  epochs: 12
  optimizer: {{Adam: {{learning_rate: 1.0e-2}}}}
  loss: binary_crossentropy
  metrics: [accuracy]
log: {{tensorboard: false}}
"""


def digit_pngs(folder: Path, count: int = 200) -> Path:
    """scikit-learn's digits as 8x8 8-bit PNGs in folders named 0..9, the digits source's class names."""
    x, y = files.digits(count)
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / str(label) / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> Path:
    return train_text(TWO_HEADS, tmp_path_factory.mktemp("heads") / "runs")


def test_predict_applies_softmax_only_to_the_output_that_gives_logits(heads, tmp_path):
    import keras

    x, _ = files.digits(5)
    stack = (x / 255.0).astype("float32")[..., None]  # the digits source stores 0..1
    np.save(tmp_path / "five.npy", stack)
    result = invoke("predict", str(heads), str(tmp_path / "five.npy"), "--top-k", "10", "--json")
    early, final = (np.asarray(o) for o in keras.saving.load_model(heads / "model.keras")(stack))
    for i, item in enumerate(result["predictions"]):
        got = {name: {t["index"]: t["probability"] for t in out["top"]} for name, out in item["outputs"].items()}
        softmax = np.exp(early[i] - early[i].max()) / np.exp(early[i] - early[i].max()).sum()
        assert [got["early"][c] for c in range(10)] == pytest.approx(softmax.tolist(), abs=1e-5)
        assert [got["final"][c] for c in range(10)] == pytest.approx(final[i].tolist(), abs=1e-5)  # no second softmax


def test_eval_reports_each_output_of_a_two_output_model(heads):
    report = invoke("eval", str(heads), "--json")
    trained = json.loads((heads / "metrics.json").read_text())["test"]
    assert [o["output"] for o in report["outputs"]] == ["early", "final"]
    for output in report["outputs"]:
        cm = np.array(output["confusion_matrix"])
        assert cm.sum() == report["examples"]
        assert np.trace(cm) / cm.sum() == pytest.approx(report["metrics"][f"{output['output']}_accuracy"], abs=1e-6)
        assert report["metrics"][f"{output['output']}_accuracy"] == pytest.approx(
            trained[f"{output['output']}_accuracy"], abs=1e-6)
    assert report["metrics"]["loss"] == pytest.approx(trained["loss"], rel=1e-4)


def test_a_digits_model_reads_8_bit_images_on_its_own_scale(heads, tmp_path):
    """Digits are stored 0..1: PNGs (0..255) are rescaled by predict and by eval --data, as their docs say."""
    pngs = digit_pngs(tmp_path / "pngs")
    evaluated = invoke("eval", str(heads), "--data", str(pngs), "--json")
    digits = tmp_path / "digits.yaml"
    digits.write_text(TWO_HEADS.replace("data: {batch_size: 64}", "data: {split: {validation: 0, test: 0}}"))
    reference = invoke("eval", str(heads), "--data", str(digits), "--split", "train", "--json")
    accuracy = evaluated["metrics"]["final_accuracy"]
    assert accuracy > 0.8  # 0..255 fed to a 0..1 model would be near chance (0.1)
    assert accuracy == pytest.approx(reference["metrics"]["final_accuracy"], abs=0.05)
    predicted = invoke("predict", str(heads), str(pngs), "--top-k", "1", "--json")["predictions"]
    right = sum(Path(p["input"]).parent.name == p["outputs"]["final"]["top"][0]["class"] for p in predicted)
    assert right / len(predicted) == pytest.approx(accuracy, abs=1e-6)


def test_model_files_inside_a_run_bring_its_record_and_outside_take_stored_values(heads, tmp_path):
    x, _ = files.digits(3)
    np.save(tmp_path / "three.npy", (x / 255.0).astype("float32")[..., None])
    from_run = invoke("predict", str(heads), str(tmp_path / "three.npy"), "--json")["predictions"]
    shutil.copy(heads / "model.keras", heads / "copy.keras")
    shutil.copy(heads / "model.keras", tmp_path / "alone.keras")
    inside = invoke("predict", str(heads / "copy.keras"), str(tmp_path / "three.npy"), "--json")["predictions"]
    alone = invoke("predict", str(tmp_path / "alone.keras"), str(tmp_path / "three.npy"), "--json")["predictions"]
    assert inside == from_run
    for a, b in zip(alone, from_run, strict=True):  # no recipe: the logits are recognised by their values
        mine, theirs = a["outputs"]["early"]["top"], b["outputs"]["early"]["top"]
        assert [t["class"] for t in mine] == [t["class"] for t in theirs]
        assert [t["probability"] for t in mine] == pytest.approx([t["probability"] for t in theirs], abs=1e-6)
    assert "--data" in invoke_fails("eval", str(tmp_path / "alone.keras"))


def test_inputs_that_are_not_what_they_say_are_refused(heads, tmp_path):
    np.savez(tmp_path / "archive.npy", x=np.zeros((2, 8, 8, 1)))
    (tmp_path / "archive.npy.npz").rename(tmp_path / "archive.npy")  # numpy adds .npz; a user renamed it
    assert "is an .npz archive" in invoke_fails("predict", str(heads), str(tmp_path / "archive.npy"))
    run = tmp_path / "run"
    shutil.copytree(heads, run)
    (run / "data.json").write_text('{"class_names": ["0"')
    assert "data.json is damaged" in invoke_fails("predict", str(run), str(tmp_path / "archive.npy"))


def test_eval_on_a_folder_with_only_a_test_folder_and_hidden_folders(heads, tmp_path):
    pngs = digit_pngs(tmp_path / "pngs" / "test", count=60)
    (pngs / ".ipynb_checkpoints").mkdir()
    report = invoke("eval", str(heads), "--data", str(tmp_path / "pngs"), "--json")
    assert report["examples"] == 60
    assert "has no validation folder" in invoke_fails("eval", str(heads), "--data", str(tmp_path / "pngs"),
                                               "--split", "validation")


def test_binary_sigmoid_models_show_both_classes(tmp_path):
    images = files.write_image_dir(tmp_path / "photos", count=240, classes=2, size=12, formats=("png",))
    run = train_text(textwrap.dedent(BINARY.format(path=images)), tmp_path / "runs")
    report = invoke("eval", str(run), "--json")
    (output,) = report["outputs"]
    cm = np.array(output["confusion_matrix"])
    assert output["classes"] == ["one", "zero"] and cm.shape == (2, 2) and cm.sum() == report["examples"]
    assert np.trace(cm) / cm.sum() == pytest.approx(report["metrics"]["accuracy"], abs=1e-6)
    assert report["metrics"]["accuracy"] > 0.8
    predicted = invoke("predict", str(run), str(images), "--top-k", "2", "--json")["predictions"]
    right = sum(Path(p["input"]).parent.name == p["outputs"]["binary"]["top"][0]["class"] for p in predicted)
    assert right / len(predicted) > 0.8  # a sigmoid read as one class would call every image "one"
    for p in predicted:
        assert sum(t["probability"] for t in p["outputs"]["binary"]["top"]) == pytest.approx(1.0)
