"""Real processes killed and resumed: the run ends bit for bit as an uninterrupted one.

One run of `cnnctl train` goes through every way a process dies, each resumed
with `cnnctl train --resume RUN`: SIGKILL while a checkpoint is being written,
SIGKILL at two random moments (seeded), SIGTERM (a checkpoint, exit 143), and two
Ctrl-Cs (stop at once, exit 130). Its model.keras, history.csv and test metrics
must equal those of the same recipe trained without interruption in another
process. The recipe has everything random that training has (shuffling,
augmentation, dropout) and a callback with state (ReduceLROnPlateau), and
checkpoints every 5 steps a model big enough (5.4 MB with Adam's slots) that
writing one takes long enough to be killed in the middle of.

A full disk is a 12 MB tmpfs (root only; skipped elsewhere), trained into in-process.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from cnnctl.training import checkpoint

pytestmark = pytest.mark.slow

RECIPE = """\
name: crash
seed: 3
data:
  batch_size: 32
  augment: [{RandomTranslation: {height_factor: 0.1, width_factor: 0.1}}]
model:
  input: [8, 8, 1]
  layers:
    - Flatten
    - Dense: {units: 6000, activation: relu}
    - Dropout: {rate: 0.3}
    - Dense: {units: 10, activation: softmax}
train:
  epochs: 4
  checkpoint_every: 5
  keep_checkpoints: 3
  deterministic: true
  callbacks: [{ReduceLROnPlateau: {patience: 1, factor: 0.5, min_delta: 10.0}}]
log: {tensorboard: false}
"""
STEPS = 40  # 1,257 training examples in batches of 32


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    with open(log, "w") as err:
        return subprocess.Popen([sys.executable, "-m", "cnnctl", "train", *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)


def newest_step(run: Path) -> int:
    manifests = checkpoint._manifests(run / "checkpoints")
    return checkpoint._step_of(manifests[-1]) if manifests else -1


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the process ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.0005)


def writing(run: Path) -> bool:
    """A checkpoint is being written: its temporary folder exists."""
    folder = run / "checkpoints"
    return folder.is_dir() and any(".tmp-" in entry.name for entry in os.scandir(folder))


def finished(process: subprocess.Popen, timeout: float = 120) -> int:
    return process.wait(timeout=timeout)


def model_weights(run: Path) -> list[np.ndarray]:
    return keras.saving.load_model(run / "model.keras").get_weights()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    (folder / "crash.yaml").write_text(RECIPE)
    return folder


@pytest.fixture(scope="module")
def uninterrupted(workdir):
    """The same recipe trained in one process, started first so that it runs beside the chain of crashes."""
    process = start(["crash.yaml", "--runs-dir", "reference"], workdir, workdir / "reference.log")
    yield process
    if process.poll() is None:
        process.kill()


def reference_run(workdir: Path, process: subprocess.Popen) -> Path:
    assert finished(process) == 0, (workdir / "reference.log").read_text()[-3000:]
    (run,) = (workdir / "reference" / "crash").iterdir()
    return run


def test_a_run_killed_every_way_resumes_to_the_uninterrupted_run(workdir, uninterrupted):
    rng = random.Random(2026)
    runs = workdir / "runs"
    first = start(["crash.yaml", "--runs-dir", "runs"], workdir, workdir / "0.log")
    wait_for(lambda: runs.is_dir() and any((runs / "crash").glob("*/recipe.yaml")), first, "the run directory")
    (run,) = (runs / "crash").iterdir()

    # 1. SIGKILL while a checkpoint is being written: the one before it stays the newest valid checkpoint
    wait_for(lambda: newest_step(run) >= 5 and writing(run), first, "a checkpoint being written")
    before = newest_step(run)
    first.kill()
    assert finished(first) == -signal.SIGKILL
    assert writing(run), "the kill was meant to land while a checkpoint was written"
    kept = checkpoint.latest_checkpoint(run)
    assert kept.global_step == before and kept.arrays  # whole, and verified against its manifest

    logs, process = [], None
    # 2. SIGKILL at random moments, each after the run has made progress
    for i in range(1, 3):
        process = start(["--resume", str(run)], workdir, workdir / f"{i}.log")
        logs.append(workdir / f"{i}.log")
        reached = newest_step(run)
        wait_for(lambda reached=reached: newest_step(run) > reached, process, f"progress in resume {i}")
        time.sleep(rng.uniform(0.0, 0.8))
        process.kill()
        assert finished(process) == -signal.SIGKILL
        assert checkpoint.latest_checkpoint(run) is not None

    # 3. SIGTERM: the current step ends, a checkpoint is written, exit 143 with how to resume
    process = start(["--resume", str(run)], workdir, workdir / "3.log")
    logs.append(workdir / "3.log")
    reached = newest_step(run)
    wait_for(lambda: newest_step(run) > reached, process, "progress before SIGTERM")
    process.send_signal(signal.SIGTERM)
    assert finished(process, timeout=30) == 143
    err = (workdir / "3.log").read_text()
    stopped = re.search(r"training stopped at (epoch (\d+), step (\d+) of 40|the end of epoch (\d+));", err)
    assert stopped, err[-2000:]
    assert f"Resume with: cnnctl train --resume {run}" in err and "Traceback" not in err
    last = checkpoint.latest_checkpoint(run)
    if stopped.group(2):  # mid-epoch: the checkpoint holds the very step it stopped at
        assert (last.epoch, last.step) == (int(stopped.group(2)) - 1, int(stopped.group(3)))
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"

    # 4. Ctrl-C twice: the second stops at once; nothing is corrupted
    process = start(["--resume", str(run)], workdir, workdir / "4.log")
    logs.append(workdir / "4.log")
    reached = newest_step(run)
    wait_for(lambda: newest_step(run) > reached, process, "progress before Ctrl-C")
    process.send_signal(signal.SIGINT)
    time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    assert finished(process, timeout=30) == 130
    err = (workdir / "4.log").read_text()
    # the two may come as one (Python runs a signal's handler once for signals that arrive together)
    assert re.search(r"(stopped at once on a second signal|training stopped at [^;]*); the checkpoints", err), err
    assert checkpoint.latest_checkpoint(run) is not None

    # 5. the last resume runs to the end
    final = start(["--resume", str(run)], workdir, workdir / "5.log")
    logs.append(workdir / "5.log")
    assert finished(final) == 0, (workdir / "5.log").read_text()[-3000:]

    resumed_from = [re.search(r"resuming .* from (.*)", log.read_text()).group(1) for log in logs]
    assert any("step" in where for where in resumed_from), resumed_from  # at least one resume began mid-epoch
    reference = reference_run(workdir, uninterrupted)
    for a, b in zip(model_weights(reference), model_weights(run), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()  # no epoch lost or twice
    metrics, expected = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert metrics["test"] == expected["test"] and metrics["status"] == "completed"
    assert len(metrics["training"]["resumed"]) == 5
    assert not list(run.rglob("*.tmp-*")) and not (run / ".lock").exists()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def deterministic_ops_then_off():
    """The recipe turns TensorFlow's deterministic ops on for the process; they are turned off after the test,
    as Keras's own tests do, so that the tests after it run as they would alone."""
    yield
    from tensorflow.python.framework.config import disable_op_determinism

    disable_op_determinism()


def test_a_full_disk_fails_the_run_and_loses_nothing(workdir, uninterrupted, small_disk, monkeypatch,
                                                     deterministic_ops_then_off):
    from cnnctl import train
    from cnnctl.errors import CnnctlError
    from cnnctl.recipe import load_recipe
    from cnnctl.run import Run
    from cnnctl.training.resume import resume

    monkeypatch.chdir(workdir)
    with pytest.raises(CnnctlError) as excinfo:  # checkpoints and best.keras of 5.4 MB each: 12 MB fills up
        train(load_recipe("crash.yaml"), runs_dir=small_disk, progress=False)
    (run,) = (small_disk / "crash").iterdir()
    message = str(excinfo.value)
    assert excinfo.value.exit_code == 1
    assert message.startswith("cannot write ") and "the disk is full; nothing written before is lost" in message
    assert f"cnnctl train --resume {run}" in message, message
    kept = checkpoint.latest_checkpoint(run)
    assert kept is not None and kept.global_step >= 5  # the last checkpoint written, whole (checksums verified)
    assert not list(run.rglob("*.tmp-*"))  # the half-written file was removed

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    resume(Run(run), load_recipe(str(run / "recipe.yaml")), progress=False)
    reference = reference_run(workdir, uninterrupted)
    for a, b in zip(model_weights(reference), model_weights(run), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()
