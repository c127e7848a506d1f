"""``train.callbacks``: Keras's own callbacks by name, vetted before training (``cnnctl.training.callbacks``)."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from cnnctl.errors import RecipeError
from cnnctl.model import build
from cnnctl.model.compile import compile_model
from cnnctl.run import layout
from cnnctl.training.callbacks import build_callbacks
from cnnctl.training.options import logged_names
from tests.conftest import invoke_fails
from tests.training.test_options import problem_of, recipe


def _callbacks(train: str, run: Path, *, has_validation: bool = True, schedule: bool = False):
    r = recipe(train)
    model = build(r).model
    compile_model(model, r)
    return build_callbacks(r, run, logged=logged_names(model, r, has_validation), has_validation=has_validation,
                           schedule=schedule)


def test_callbacks_are_keras_own_with_their_arguments(tmp_path):
    made = _callbacks("""
        callbacks:
          - EarlyStopping: {monitor: val_accuracy, patience: 3, min_delta: 0.01, restore_best_weights: true}
          - ReduceLROnPlateau
          - TerminateOnNaN
          - CSVLogger: {filename: extra/log.csv}
        """, tmp_path)
    assert [type(c) for c in made] == [keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau,
                                       keras.callbacks.TerminateOnNaN, keras.callbacks.CSVLogger]
    early = made[0]
    assert (early.monitor, early.patience, early.min_delta, early.restore_best_weights) == \
        ("val_accuracy", 3, 0.01, True)
    assert made[3].filename == str(tmp_path / "extra" / "log.csv")  # inside the run directory


@pytest.mark.parametrize("filename", ["../log.csv", "extra/../../log.csv", "/tmp/log.csv", "history.csv",
                                      "checkpoints/log.csv", "metrics.json", "data.json", "eval/log.csv", ""])
def test_callback_files_stay_inside_the_run_and_off_its_own_files(filename, tmp_path):
    with pytest.raises(RecipeError) as excinfo:
        _callbacks(f"callbacks: [{{CSVLogger: {{filename: '{filename}'}}}}]", tmp_path)
    assert "train.callbacks[0].CSVLogger.filename:" in problem_of(excinfo)


@pytest.mark.parametrize(("name", "advice"), [
    ("ModelCheckpoint", "train.monitor"), ("BackupAndRestore", "checkpoints/"), ("TensorBoard", "log.tensorboard"),
    ("LambdaCallback", "runs Python code"), ("RemoteMonitor", "history.csv"),
    ("LearningRateScheduler", "learning_rate a schedule"),
])
def test_refused_callbacks_say_what_to_use_instead(name, advice, tmp_path):
    with pytest.raises(RecipeError) as excinfo:
        _callbacks(f"callbacks: [{name}]", tmp_path)
    assert f"callback {name} is not available in a recipe" in problem_of(excinfo)
    assert advice in problem_of(excinfo)


def test_early_stopping_default_monitor_needs_a_validation_split(tmp_path):
    with pytest.raises(RecipeError) as excinfo:
        _callbacks("callbacks: [EarlyStopping]", tmp_path, has_validation=False)
    message = problem_of(excinfo)
    assert "watches 'val_loss' by default" in message and "no val_ metrics" in message and "loss" in message


def test_reduce_lr_on_plateau_and_a_schedule_exclude_each_other(tmp_path):
    with pytest.raises(RecipeError) as excinfo:
        _callbacks("callbacks: [ReduceLROnPlateau]", tmp_path, schedule=True)
    assert "remove one of the two" in problem_of(excinfo)


def test_callback_argument_types_are_checked_before_training(tmp_path):
    with pytest.raises(RecipeError) as excinfo:
        _callbacks("callbacks: [{EarlyStopping: {patience: '3'}}]", tmp_path)
    assert "EarlyStopping.patience is a whole number, got '3'" in problem_of(excinfo)


def test_every_file_and_folder_of_a_run_is_refused_as_a_callbacks_file(tmp_path):
    for name in [*layout.FILES, *(f"{folder}/log.csv" for folder in layout.FOLDERS)]:
        with pytest.raises(RecipeError) as excinfo:
            _callbacks(f"callbacks: [{{CSVLogger: {{filename: '{name}'}}}}]", tmp_path)
        assert "is where cnnctl writes its own files" in problem_of(excinfo), name


def test_a_csv_log_named_data_json_is_refused_before_it_could_overwrite_the_runs_data_record(tmp_path, monkeypatch):
    # cnnctl 93d106b let this recipe train: its CSVLogger wrote the epochs over data.json, and eval, predict and
    # export of the run then failed with "data.json is damaged".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(
        "name: r\nmodel: {input: [8, 8, 1], layers: [Flatten, {Dense: {units: 10, activation: softmax}}]}\n"
        "train:\n  epochs: 1\n  callbacks: [{CSVLogger: {filename: data.json}}]\n")
    for command in ("check", "train"):
        message = invoke_fails(command, "r.yaml")
        assert "r.yaml:5:38: train.callbacks[0].CSVLogger.filename: 'data.json' is where cnnctl writes its own " \
               "files (recipe.yaml, data.json, " in message, message
    assert not (tmp_path / "runs").exists()  # refused before a run existed
