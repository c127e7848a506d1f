"""Ctrl-C says what it interrupted and what is kept, in each command and in each phase of train (issue 16, item
10). Ctrl-C is a KeyboardInterrupt raised where the phase runs (a real signal would land at a moment no test can
choose); training's own handling of SIGINT between steps is tested in tests/training."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cnnctl
from cnnctl.cli import main

RECIPE = """\
name: ctrlc
data: {source: digits, split: {validation: 0.1, test: 0.2}}
model:
  input: [8, 8, 1]
  layers: [Flatten, {Dense: {units: 10, activation: softmax}}]
train: {epochs: 1}
log: {tensorboard: false}
"""


def ctrl_c(*args, **kwargs):
    raise KeyboardInterrupt


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("command", "api", "said"), [
    ("check", "check", "check interrupted; nothing was written"),
    ("eval", "evaluate", "eval interrupted; nothing was written"),
    ("predict", "predict", "predict interrupted; the rows printed above are complete"),
    ("export", "export", "export interrupted; nothing was written (an export is renamed into place only once "),
])
def test_ctrl_c_in_a_command_that_keeps_no_run_says_nothing_was_written(tmp_path, monkeypatch, command, api, said):
    monkeypatch.setattr(cnnctl, api, ctrl_c)
    recipe = tmp_path / "ctrlc.yaml"
    recipe.write_text(RECIPE)
    args = {"check": [str(recipe)], "eval": ["runs/x"], "predict": ["runs/x", "a.png"],
            "export": ["savedmodel", "runs/x"]}[command]
    result = CliRunner().invoke(main, [command, *args])
    assert result.exit_code == 130 and last_line(result).startswith(said)
    assert "checkpoint" not in result.stderr


def train(tmp_path):
    recipe = tmp_path / "ctrlc.yaml"
    recipe.write_text(RECIPE)
    return CliRunner().invoke(main, ["train", str(recipe), "--runs-dir", str(tmp_path / "runs")])


def the_run(tmp_path):
    (run,) = (tmp_path / "runs" / "ctrlc").iterdir()
    return run


def test_ctrl_c_before_the_run_exists_says_nothing_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr("cnnctl.training.trainer.prepare", ctrl_c)  # reading the data, building the model
    result = train(tmp_path)
    assert result.exit_code == 130
    assert last_line(result) == "train interrupted before the run was created; nothing was written"
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_says_the_run_has_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr("cnnctl.tensorboard.callbacks.tensorboard_callbacks", ctrl_c)  # setting up fit's callbacks
    result = train(tmp_path)
    run = the_run(tmp_path)
    assert result.exit_code == 130
    assert last_line(result) == (f"interrupted before the first epoch started; {run} holds no checkpoint: resume it "
                                 f"with cnnctl train --resume {run}, or delete it")
    assert (run / "recipe.yaml").is_file() and not list(run.glob("checkpoints/*"))


@pytest.mark.slow
def test_ctrl_c_while_measuring_the_test_split_is_finished_by_resume_without_training(tmp_path, monkeypatch):
    with monkeypatch.context() as patched:
        patched.setattr("cnnctl.serving.evaluate.measure", ctrl_c)
        result = train(tmp_path)
    run = the_run(tmp_path)
    assert result.exit_code == 130 and "40/40 - " in result.stderr  # Keras's line for the epoch's 40 steps
    assert last_line(result) == (f"interrupted while measuring the test split; training had finished and "
                                 f"{run / 'model.keras'} is written. Measure and export with: cnnctl train "
                                 f"--resume {run} (no epoch is trained again)")
    assert (run / "model.keras").is_file() and not (run / "metrics.json").exists()  # not completed

    resumed = CliRunner().invoke(main, ["train", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert "40/40 - " not in resumed.stderr  # nothing trained again
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and set(metrics["test"]) == {"loss", "accuracy"}
