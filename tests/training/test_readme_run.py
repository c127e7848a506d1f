"""The whole path a user takes: train the seed recipe, read its run, eval it, export it.

The README's first command, run by the real command in a subprocess, is the session's
shared digits run (``digits_run`` in tests/conftest.py, about 30 s on 2 cores); eval and
export then run in-process (CliRunner), sparing a TensorFlow import each, on copies
where they write into the run.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DIGITS, cli, invoke
from tests.tolerance import assert_close, most_diff

pytestmark = pytest.mark.slow


def test_train_prints_held_out_accuracy(digits_run):
    run, result = digits_run.path, digits_run.result
    test_row = next(line for line in result.stdout.splitlines() if line.startswith("test "))
    header = result.stdout.splitlines()[0].split()
    accuracy = float(test_row.split()[header.index("accuracy")])
    metrics = json.loads((run / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-4)
    # the seed network on a held-out 20 % split: about 0.95 (its 0.9989 is training accuracy)
    assert metrics["test"]["accuracy"] >= 0.92
    assert metrics["examples"] == {"train": 1257, "validation": 180, "test": 360}
    assert "Epoch 40/40" in result.stderr  # Keras's progress goes to stderr
    assert "Traceback" not in result.stderr
    assert "Warning" not in result.stderr, result.stderr[:2000]  # no library noise for the user


def test_run_directory_layout(digits_run):
    workdir, run = digits_run.workdir, digits_run.path
    assert run.parent == workdir / "runs" / "digits_cnn"
    for name in ["recipe.yaml", "model.keras", "best.keras", "history.csv", "metrics.json",
                 "checkpoints/ckpt-000006320.json", "checkpoints/ckpt-000006320/state.npz",
                 "export/savedmodel/saved_model.pb"]:  # the last checkpoint: 40 epochs of 158 steps
        assert (run / name).is_file(), name
    assert not (run / ".lock").exists()
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]  # no temporary files left
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    metrics = json.loads((run / "metrics.json").read_text())
    best = metrics["best"]
    assert best["monitor"] == "val_accuracy"
    assert best["value"] == pytest.approx(max(float(r["val_accuracy"]) for r in rows))
    assert metrics["images_per_sec"] > 0 and metrics["versions"]["keras"].startswith("3.")
    from cnnctl.training.checkpoint import latest_checkpoint

    last = latest_checkpoint(run)
    assert (last.epoch, last.step, len(last.state["rows"])) == (40, 0, 40)
    assert len(list((run / "checkpoints").glob("ckpt-*.json"))) == 2  # train.keep_checkpoints: the newest two
    assert metrics["status"] == "completed"


def test_stored_recipe_is_resolved_and_reloads(digits_run):
    from cnnctl.recipe import load_recipe

    run = digits_run.path
    stored = load_recipe(str(run / "recipe.yaml"))
    original = load_recipe(str(DIGITS))
    assert stored.model_dump() == original.model_dump()
    assert "shuffle: true" in (run / "recipe.yaml").read_text()  # defaults are written out


def test_tensorboard_events_have_train_and_validation_scalars(digits_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = digits_run.path
    for split in ("train", "validation"):
        events = EventAccumulator(str(run / "logs" / split), size_guidance={"tensors": 0})
        events.Reload()
        tags = events.Tags()["tensors"]
        assert {"epoch_loss", "epoch_accuracy"} <= set(tags), tags
        assert len(events.Tensors("epoch_loss")) == 40


def test_eval_latest_matches_training_metrics(digits_run, tmp_path, monkeypatch):
    run = digits_run.copy(tmp_path)  # eval writes eval/ and logs/eval into the run
    monkeypatch.chdir(tmp_path)
    report = invoke("eval", "latest", "--json")
    metrics = json.loads((run / "metrics.json").read_text())
    assert report["examples"] == 360
    assert report["metrics"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    best = invoke("eval", str(run), "--best", "--split", "validation", "--json")
    assert best["metrics"]["accuracy"] == pytest.approx(metrics["best"]["value"], abs=1e-6)


def test_saved_model_cli_reads_the_export(digits_run):
    run = digits_run.path
    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run([str(cli), "show", "--dir", str(run / "export" / "savedmodel"),
                             "--tag_set", "serve", "--signature_def", "serving_default"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "inputs['inputs']" in result.stdout and "(-1, 8, 8, 1)" in result.stdout
    assert "(-1, 10)" in result.stdout


def test_export_matches_keras_on_single_examples(digits_run):
    import keras
    import tensorflow as tf

    from cnnctl.recipe import load_recipe
    from tests.conftest import datasets_of

    run = digits_run.path
    model = keras.saving.load_model(run / "model.keras")
    serve = tf.saved_model.load(str(run / "export" / "savedmodel")).signatures["serving_default"]
    x = datasets_of(load_recipe(str(run / "recipe.yaml"))).sample("test", 5, raw=True)[0]  # digits: as stored
    batch = serve(inputs=tf.constant(x))["output_0"].numpy()
    for i in range(5):
        alone = serve(inputs=tf.constant(x[i:i + 1]))["output_0"].numpy()
        assert_close(alone[0], batch[i])
    assert_close(batch, model(x, training=False))
    recorded = json.loads((run / "metrics.json").read_text())["exports"]["savedmodel"]
    assert recorded["max_abs_diff"] <= most_diff("float32")
    assert recorded["checked_examples"] == 360  # the whole test split


def test_export_refuses_to_overwrite_then_writes_elsewhere(digits_run, tmp_path, monkeypatch):
    run = digits_run.copy(tmp_path)  # the export is recorded in the run's metrics.json
    monkeypatch.chdir(tmp_path)
    again = cli("export", "savedmodel", str(run))
    assert again.exit_code == 2 and "--force" in again.stderr and "Traceback" not in again.output, again.exception
    out = tmp_path / "served"
    result = cli("export", "savedmodel", str(run), "--out", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert (out / "saved_model.pb").is_file()
    assert str(out) in result.stdout and "checked against Keras" in result.stdout
