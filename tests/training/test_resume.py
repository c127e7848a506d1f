"""Exact resume, in-process: a run cut back to any of its checkpoints and resumed ends as the uninterrupted run.

One 4-epoch run of a small CNN on digits, with everything random that training
has (shuffling, RandomTranslation, Dropout) and callbacks that keep state
(ReduceLROnPlateau, EarlyStopping with restore_best_weights, CSVLogger), writes a
checkpoint every 7 steps and keeps them all. A crash is what it leaves: a copy of
the run with the checkpoints after the n-th removed (and no model.keras). The
resumed copy must end with the same weights (bit for bit), history.csv and CSV
log. tests/training/test_crash_resume.py kills real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap

import keras
import numpy as np
import pytest

from cnnctl import train
from cnnctl.errors import UserError
from cnnctl.recipe import load_recipe, load_recipe_text
from cnnctl.run import Run
from cnnctl.training import checkpoint
from cnnctl.training.resume import resume, resume_recipe

pytestmark = pytest.mark.slow

RECIPE = textwrap.dedent("""
    name: r
    seed: 7
    data:
      batch_size: 32
      augment: [{RandomTranslation: {height_factor: 0.1, width_factor: 0.1}}]
    model:
      input: [8, 8, 1]
      layers:
        - Conv2D: {filters: 8, kernel_size: 3, activation: relu}
        - BatchNormalization
        - Flatten
        - Dropout: {rate: 0.3}
        - Dense: {units: 10, activation: softmax}
    train:
      epochs: 4
      checkpoint_every: 7
      keep_checkpoints: 100
      callbacks:
        - ReduceLROnPlateau: {patience: 1, factor: 0.5, min_delta: 10.0}
        - EarlyStopping: {patience: 8, restore_best_weights: true}
        - CSVLogger: {filename: log.csv}
    log: {tensorboard: false}
""")
STEPS = 40  # 1,257 training examples in batches of 32


def weights(run_path) -> list[np.ndarray]:
    return keras.saving.load_model(run_path / "model.keras").get_weights()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    result = train(load_recipe_text(RECIPE, "r.yaml"), runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    return result.run.path


def crashed_copy(reference, tmp_path, kept: int):
    """The run as a crash after its ``kept``-th checkpoint leaves it."""
    copy = tmp_path / "crashed"
    shutil.copytree(reference, copy)
    for manifest in checkpoint._manifests(copy / "checkpoints")[kept:]:
        checkpoint._remove(manifest)
    (copy / "model.keras").unlink()
    (copy / "metrics.json").unlink()
    return Run(copy)


def assert_same_run(reference, resumed) -> None:
    for a, b in zip(weights(reference), weights(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (resumed / "history.csv").read_text() == (reference / "history.csv").read_text()
    assert (resumed / "log.csv").read_text() == (reference / "log.csv").read_text()  # CSVLogger: no epoch twice


def test_the_reference_run_wrote_a_checkpoint_every_7_steps_and_at_each_epoch_end(reference):
    steps = [checkpoint._step_of(m) for m in checkpoint._manifests(reference / "checkpoints")]
    assert steps == sorted({*range(7, 4 * STEPS, 7), *range(STEPS, 4 * STEPS + 1, STEPS)})
    last = checkpoint.latest_checkpoint(reference)
    assert (last.epoch, last.step) == (4, 0) and last.state["epochs_planned"] == 4
    learning_rates = [row["learning_rate"] for row in last.state["rows"]]
    assert learning_rates == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])  # ReduceLROnPlateau acted: state to keep


@pytest.mark.parametrize("kept", [3, 8, 13], ids=["epoch1-step21", "epoch2-step9", "end-of-epoch2"])
def test_a_run_resumed_from_any_checkpoint_ends_as_the_uninterrupted_run(reference, tmp_path, kept, capsys):
    run = crashed_copy(reference, tmp_path, kept)
    start = checkpoint.latest_checkpoint(run.path)
    result = resume(run, load_recipe(str(run / "recipe.yaml")), progress=False)
    assert_same_run(reference, run.path)
    assert result.metrics["training"]["resumed"] == [{"epoch": start.epoch, "step": start.step}]
    assert result.metrics["epochs"] == 4 and result.metrics["status"] == "completed"
    reference_metrics = json.loads((reference / "metrics.json").read_text())
    assert result.metrics["test"] == reference_metrics["test"]
    assert f"resuming {run.path} from" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_skipped_for_the_one_before_it(reference, tmp_path, capsys):
    run = crashed_copy(reference, tmp_path, 8)
    newest, before = checkpoint._manifests(run / "checkpoints")[-2:][::-1]
    arrays = newest.with_suffix("") / "state.npz"
    with open(arrays, "r+b") as f:  # truncated, as by a crash of the disk under it
        f.truncate(arrays.stat().st_size // 2)
    os.mkdir(run / "checkpoints" / f".ckpt-000000999.tmp-{os.getpid()}")  # what a killed writer leaves
    os.mkdir(run / "checkpoints" / "ckpt-000000998")  # renamed, but killed before its manifest
    assert checkpoint.latest_checkpoint(run.path).global_step == checkpoint._step_of(before)
    resume(run, load_recipe(str(run / "recipe.yaml")), progress=False)
    err = capsys.readouterr().err
    assert f"checkpoint {newest.with_suffix('').name} is damaged (state.npz has" in err and "the one before" in err
    assert_same_run(reference, run.path)
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if "99" in p.name]
    assert leftovers == []


def test_extending_a_finished_run_equals_training_longer_from_the_start(reference, tmp_path):
    run = Run(tmp_path / "finished")
    shutil.copytree(reference, run.path)
    extended = resume(run, resume_recipe(run, None, ["train.epochs=6"]), progress=False)
    longer = train(load_recipe_text(RECIPE.replace("epochs: 4", "epochs: 6"), "r.yaml"), runs_dir=tmp_path / "runs",
                   progress=False)
    assert extended.metrics["epochs"] == 6 and extended.metrics["training"]["epochs_planned"] == 6
    for a, b in zip(weights(run.path), weights(longer.run.path), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (run / "history.csv").read_text() == (longer.run / "history.csv").read_text()
    assert "epochs: 6" in (run / "recipe.yaml").read_text()
    with pytest.raises(UserError, match=r"has trained 6 epochs already; train\.epochs=5 is fewer"):
        resume(run, resume_recipe(run, None, ["train.epochs=5"]), progress=False)


def test_a_finished_run_resumed_again_is_finished_without_training(reference, tmp_path):
    run = Run(tmp_path / "done")
    shutil.copytree(reference, run.path)
    (run / "model.keras").unlink()  # killed while it finished: after the last epoch, before model.keras
    (run / "metrics.json").unlink()
    result = resume(run, load_recipe(str(run / "recipe.yaml")), progress=False)
    assert result.metrics["training"]["resumed"] == [{"epoch": 4, "step": 0}]
    assert_same_run(reference, run.path)  # EarlyStopping's restore_best_weights applied once, as before


def test_a_completed_run_has_nothing_to_resume(reference, tmp_path, capsys):
    run = Run(tmp_path / "completed")
    shutil.copytree(reference, run.path)
    before = {p.name: p.stat().st_mtime_ns for p in run.path.rglob("*")}
    result = resume(run, load_recipe(str(run / "recipe.yaml")), progress=False)
    assert "has finished its 4 epochs: nothing to resume (give --set train.epochs=N" in capsys.readouterr().err
    assert result.metrics == json.loads((reference / "metrics.json").read_text())
    assert {p.name: p.stat().st_mtime_ns for p in run.path.rglob("*")} == before  # nothing rewritten


def test_any_other_change_to_the_recipe_is_refused_with_the_diff(reference, tmp_path):
    run = Run(reference)
    with pytest.raises(UserError) as excinfo:
        resume_recipe(run, None, ["data.batch_size=64", "train.epochs=8"])
    message = str(excinfo.value)
    assert "a resumed run may change only train.epochs" in message
    assert "-  batch_size: 32\n+  batch_size: 64" in message and "--force" in message
    changed = [line for line in message.splitlines() if line.startswith(("-", "+")) and line[:3] not in ("---", "+++")]
    assert len(changed) == 2 and "epochs" not in " ".join(changed)  # train.epochs=8 may change: not in the diff
    forced = resume_recipe(run, None, ["data.batch_size=64"], force=True)
    assert forced.data.batch_size == 64
    same = resume_recipe(run, str(reference / "recipe.yaml"), ["train.epochs=9"])  # RECIPE given: the same one
    assert same.train.epochs == 9


def test_a_run_another_live_process_holds_is_refused(reference, tmp_path):
    run = crashed_copy(reference, tmp_path, 3)
    (run / ".lock").write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")  # alive: this very process
    with pytest.raises(UserError, match="is in use by another process"):
        resume(run, load_recipe(str(run / "recipe.yaml")), progress=False)
    assert (run / ".lock").exists() and not (run / "model.keras").exists()  # refused before any work


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(reference, tmp_path, capsys):
    run = crashed_copy(reference, tmp_path, 13)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run / ".lock").write_text(f"pid {dead.pid} on {socket.gethostname()}\n")
    resume(run, load_recipe(str(run / "recipe.yaml")), progress=False)
    assert "taking over the lock of a process that is gone" in capsys.readouterr().err
    assert not (run / ".lock").exists()
    assert_same_run(reference, run.path)


def test_the_first_signal_asks_for_a_checkpoint_and_the_second_stops_at_once():
    import signal
    import time
    from types import SimpleNamespace

    from cnnctl.training.state import Interrupted, stop_on_signals

    state = SimpleNamespace(signal=None)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as excinfo, stop_on_signals(state):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs: it only asks (the training loop stops after its step)
        assert state.signal == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the second does not wait for anything
    assert excinfo.value.at_once and excinfo.value.exit_code == 143
    assert excinfo.value.message == "stopped at once on a second signal"
    assert signal.getsignal(signal.SIGTERM) is previous  # the handlers are put back


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_each_epochs_order_depends_on_the_recipes_seed_and_the_epoch_alone(cache):
    """Not on the global seed the process set before (a run builds its pipeline before and after setting it),
    nor on how many epochs were read before: seed 0 included, which TensorFlow once compared with a tensor."""
    from tests.conftest import datasets_of

    def labels(global_seed, first=0):
        if global_seed is not None:
            keras.utils.set_random_seed(global_seed)
        text = f"name: t\nseed: 0\ndata: {{cache: {cache}}}\nmodel: {{input: [8, 8, 1], layers: [Flatten, Dense]}}\n"
        data = datasets_of(load_recipe_text(text.replace("Dense", "{Dense: {units: 10}}")))
        return np.concatenate([y.numpy() for _, y in data.train_epochs(first, 3)]), data.sizes["train"]

    (a, n), (b, _), (c, _) = labels(None), labels(0), labels(5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(labels(0, first=2)[0], a[2 * n:])
    assert not np.array_equal(a[:n], a[n: 2 * n])


def test_runs_started_at_the_same_moment_never_share_a_directory(tmp_path):
    """Each run directory is made with one mkdir, which only one caller can win: 16 at once get 16 folders."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(lambda _: Run.create(tmp_path, "same").path, range(16)))
    assert len(set(made)) == 16 and all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_a_run_early_stopping_ended_is_finished_without_training_on(tmp_path):
    """Killed after EarlyStopping's last epoch, before model.keras: the resume trains nothing and ends as the
    run would have (the best weights restored), not with the epochs EarlyStopping had called off."""
    text = RECIPE.replace("patience: 8, restore_best_weights: true",
                          "monitor: val_loss, patience: 1, min_delta: 10.0, restore_best_weights: true")
    first = train(load_recipe_text(text, "r.yaml"), runs_dir=tmp_path / "runs", progress=False)
    assert first.metrics["epochs"] == 2 and first.metrics["training"]["stopped_by"] == "EarlyStopping"
    expected = weights(first.run.path)
    (first.run / "model.keras").unlink()
    (first.run / "metrics.json").unlink()
    again = resume(first.run, load_recipe(str(first.run / "recipe.yaml")), progress=False)
    assert again.metrics["epochs"] == 2 and again.metrics["training"]["stopped_by"] == "EarlyStopping"
    for a, b in zip(expected, weights(first.run.path), strict=True):
        np.testing.assert_array_equal(a, b)
