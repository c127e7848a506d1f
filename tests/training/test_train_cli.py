"""The training options through the real CLI: located errors (exit 2) and the summary ``train`` prints.

Malformed cases follow tests/recipe/test_malformed.py: the recipe marks the line the error
must point at with ``# <-``; ``check`` sees everything that needs no data, ``train`` the rest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnctl.cli import main
from cnnctl.recipe import load_recipe
from tests.conftest import run_cli
from tests.recipe.test_malformed import Case, chain, expected_prefix

HEAD = "Dense: {units: 10, activation: softmax}"


def with_train(*lines: str) -> str:
    """A sound chain on digits (layers on lines 5-6), then ``train:`` on line 7 and ``lines`` from line 8."""
    return chain("Flatten", HEAD, after="train:\n" + "".join(f"  {line}\n" for line in lines))


CHECK = {
    "schedule_unknown": Case(
        with_train("optimizer: {Adam: {learning_rate: {CosineDecy: {initial_learning_rate: 0.1, decay_steps: 9}}}}"
                   "  # <-"),
        38, "train.optimizer.Adam.learning_rate.CosineDecy",
        "unknown learning-rate schedule 'CosineDecy' (did you mean 'CosineDecay'?)"),
    "schedule_argument_typo": Case(
        with_train("optimizer:", "  Adam:", "    learning_rate:", "      CosineDecay:",
                   "        initial_learning_rate: 0.1", "        decay_step: auto  # <-"),
        11, "train.optimizer.Adam.learning_rate.CosineDecay.decay_step",
        "CosineDecay has no argument 'decay_step' (did you mean 'decay_steps'?)"),
    "schedule_argument_missing": Case(
        with_train("optimizer: {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.1}}}}  # <-"),
        51, "train.optimizer.Adam.learning_rate.CosineDecay", "CosineDecay needs decay_steps, e.g."),
    "schedule_argument_wrong_type": Case(
        with_train("optimizer:", "  SGD:", "    learning_rate:", "      ExponentialDecay:",
                   "        initial_learning_rate: fast  # <-", "        decay_steps: auto", "        decay_rate: 0.5"),
        34, "train.optimizer.SGD.learning_rate.ExponentialDecay.initial_learning_rate",
        "ExponentialDecay.initial_learning_rate is a number, got 'fast'"),
    "schedule_auto_where_keras_wants_a_number": Case(
        with_train("optimizer:", "  SGD:", "    learning_rate:", "      ExponentialDecay:",
                   "        initial_learning_rate: 0.1", "        decay_steps: 100",
                   "        decay_rate: auto  # <-"),
        23, "train.optimizer.SGD.learning_rate.ExponentialDecay.decay_rate", "is a number, got 'auto'"),
    "schedule_keras_refuses": Case(
        with_train("optimizer: {SGD: {learning_rate: {PiecewiseConstantDecay: {boundaries: [10, 20],  # <-",
                   "  values: [0.1, 0.01]}}}}"),
        61, "train.optimizer.SGD.learning_rate.PiecewiseConstantDecay",
        "boundaries should be 1 less than the length of values"),
    "callback_unknown": Case(
        with_train("callbacks:", "  - EarlyStoping: {patience: 3}  # <-"),
        7, "train.callbacks[0]", "unknown callback 'EarlyStoping' (did you mean 'EarlyStopping'?)"),
    "callback_argument_typo": Case(
        with_train("callbacks:", "  - EarlyStopping: {monitor: val_loss, patiense: 3}  # <-"),
        42, "train.callbacks[0].EarlyStopping.patiense",
        "EarlyStopping has no argument 'patiense' (did you mean 'patience'?)"),
    "callback_monitor_typo": Case(
        with_train("callbacks:", "  - EarlyStopping: {monitor: val_acc}  # <-"),
        32, "train.callbacks[0].EarlyStopping.monitor",
        "'val_acc' is not a metric of this run (did you mean 'val_accuracy'?)"),
    "callback_owned_by_cnnctl": Case(
        with_train("callbacks:", "  - ModelCheckpoint: {filepath: best.keras}  # <-"),
        7, "train.callbacks[0]", "callback ModelCheckpoint is not available in a recipe: cnnctl saves best.keras"),
    "callback_runs_code": Case(
        with_train("callbacks: [TerminateOnNaN, LearningRateScheduler]  # <-"),
        31, "train.callbacks[1]", "give the optimizer's learning_rate a schedule instead"),
    "callback_file_escapes_the_run": Case(
        with_train("callbacks:", "  - CSVLogger: {filename: ../../log.csv}  # <-"),
        29, "train.callbacks[0].CSVLogger.filename", "'../../log.csv' leaves the run directory"),
    "reduce_lr_with_a_schedule": Case(
        with_train("optimizer: {SGD: {learning_rate: {CosineDecay: {initial_learning_rate: 0.1, decay_steps: auto}}}}",
                   "callbacks: [ReduceLROnPlateau]  # <-"),
        15, "train.callbacks[0]", "ReduceLROnPlateau sets the optimizer's learning rate"),
    "class_weight_typo": Case(
        with_train("class_weight: balance  # <-"),
        17, "train.class_weight", "got 'balance' (did you mean 'balanced'?)"),
    "class_weight_no_such_class": Case(
        with_train("class_weight:", "  0: 2.0", "  10: 2.0  # <-"),
        5, "train.class_weight[10]", "there is no class 10: the classes are 0..9"),
    "class_weight_several_outputs": Case(
        "name: t\nmodel:\n  input: [8, 8, 1]\n  graph:\n    flat: Flatten\n"
        f"    a: {{{HEAD}}}\n    b: {{{HEAD}, from: flat}}\n  outputs: [a, b]\n"
        "train:\n  class_weight: balanced  # <-\n",
        17, "train.class_weight", "Keras applies class_weight to a model with one output; this one has 2 (a, b)"),
    "mixed_precision_typo": Case(
        with_train("mixed_precision: half  # <-"),
        20, "train.mixed_precision", "Input should be 'auto', 'off', 'float16' or 'bfloat16', got 'half'"),
    "jit_compile_word": Case(
        with_train("jit_compile: always  # <-"), 16, "train.jit_compile", "jit_compile is auto, true or false"),
    "steps_per_execution_zero": Case(
        with_train("steps_per_execution: 0  # <-"), 24, "train.steps_per_execution", "greater than 0"),
}

TRAIN = {
    "class_weight_unknown_class_name": Case(
        with_train("class_weight: {seven: 2.0}  # <-"), 18, "train.class_weight.seven",
        "unknown class 'seven'; give a class index 0..9 or one of the class names: 0, 1, 2"),
    "warmup_longer_than_the_run": Case(
        with_train("epochs: 1", "optimizer:", "  Adam:", "    learning_rate:", "      CosineDecay:",
                   "        initial_learning_rate: 0.0", "        warmup_target: 1.0e-3",
                   "        warmup_steps: 1000  # <-", "        decay_steps: auto"),
        25, "train.optimizer.Adam.learning_rate.CosineDecay.warmup_steps",
        "decay_steps: auto is the run's 40 training steps minus warmup_steps (1000)"),
}


def params(cases: dict[str, Case], command: str) -> list:
    return [pytest.param(command, case, id=name) for name, case in cases.items()]


@pytest.mark.parametrize(("command", "case"), params(CHECK, "check") + params(TRAIN, "train"))
def test_bad_training_option_exits_2_located(command: str, case: Case, tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    path.write_text(case.text, encoding="utf-8")
    runs = tmp_path / "runs"
    args = [command, str(path)] + (["--runs-dir", str(runs)] if command == "train" else [])

    result = CliRunner().invoke(main, args)

    assert isinstance(result.exception, SystemExit), f"escaped: {result.exception!r}"  # else: a traceback
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == case.errors, result.stderr
    assert re.match(expected_prefix(case, path), errors[0]), errors[0]
    assert case.phrase in errors[0], errors[0]
    assert not runs.exists() or not any(runs.glob("*/*"))  # a rejected recipe leaves no run behind


EVERY_OPTION = [
    "epochs: 3",
    "optimizer: {Adam: {learning_rate: {CosineDecay: {initial_learning_rate: 0.0, warmup_target: 1.0e-3,",
    "                                                 warmup_steps: 5, decay_steps: auto}}}}",
    "callbacks: [{EarlyStopping: {patience: 2}}, TerminateOnNaN, {CSVLogger: {filename: log.csv}}]",
    "class_weight: balanced", "mixed_precision: bfloat16", "jit_compile: false", "steps_per_execution: 2"]
# Each option of EVERY_OPTION made wrong (old text, new text) and where check says so: check reads every one.
ONE_WRONG = {
    "train.epochs": ("epochs: 3", "epochs: 0"),
    "train.optimizer.Adam.learning_rate.CosineDecay.decay_steps": ("decay_steps: auto", "decay_steps: -3"),
    "train.callbacks[0].EarlyStopping": ("{patience: 2}", "{monitor: val_acuracy, patience: 2}"),
    "train.callbacks[2].CSVLogger.filename": ("filename: log.csv", "filename: 7"),
    "train.class_weight": ("class_weight: balanced", "class_weight: balance"),
    "train.mixed_precision": ("mixed_precision: bfloat16", "mixed_precision: float64"),
    "train.jit_compile": ("jit_compile: false", "jit_compile: sometimes"),
    "train.steps_per_execution": ("steps_per_execution: 2", "steps_per_execution: 0"),
}


def test_check_accepts_every_training_option(write_recipe):
    # Accepted, without a word against any of them, and kept as written: none was passed over unread, for each
    # one made wrong is refused at its key.
    path = write_recipe(with_train(*EVERY_OPTION))
    result = CliRunner().invoke(main, ["check", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "" and json.loads(result.stdout)["warnings"] == []
    train = load_recipe(str(path)).train
    assert (train.epochs, train.class_weight, train.mixed_precision, train.jit_compile,
            train.steps_per_execution) == (3, "balanced", "bfloat16", False, 2)
    text = path.read_text()
    for i, (key, (right, wrong)) in enumerate(ONE_WRONG.items()):
        assert text.count(right) == 1, right
        wrong_path = write_recipe(text.replace(right, wrong), name=f"wrong_{i}.yaml")
        refused = CliRunner().invoke(main, ["check", str(wrong_path)])
        assert refused.exit_code == 2, (key, refused.output)
        assert f": {key}" in refused.stderr.splitlines()[0], (key, refused.stderr)


EARLY_STOP = with_train(
    "epochs: 10",
    "callbacks: [{EarlyStopping: {monitor: val_loss, patience: 1, min_delta: 10.0}}, {CSVLogger: {filename: k.csv}}]",
    "monitor: val_accuracy",
).replace("name: t\n", "name: t\ndata: {batch_size: 128}\nlog: {tensorboard: false}\n")


def check_summary(stdout: str, runs_dir: Path) -> Path:
    """The summary's lines agree with the run's metrics.json; return the run directory."""
    lines = stdout.splitlines()
    assert lines[-1].startswith("run: ")
    run = Path(lines[-1][len("run: "):])
    run = run if run.is_absolute() else runs_dir.parent / run
    metrics = json.loads((run / "metrics.json").read_text())
    header = lines[0].split()
    assert header == ["split", "loss", "accuracy"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    for split in ("train", "validation", "test"):
        assert [float(v) for v in rows[split]] == pytest.approx(
            [metrics[split]["loss"], metrics[split]["accuracy"]], abs=5e-5), split
    assert "last epoch: 2 of 10, stopped early by EarlyStopping (train and validation above)" in lines
    best = metrics["best"]
    assert best["monitor"] == "val_accuracy"
    assert f"best epoch: {best['epoch']}, val_accuracy {best['value']:.4f} (best.keras)" in lines
    time_line = next(line for line in lines if line.startswith("time: "))
    assert f"{metrics['images_per_sec']:,.0f} images/s" in time_line
    assert "learning rate: 0.001 at the end" in lines
    assert (run / "k.csv").is_file()  # CSVLogger wrote inside the run
    assert json.loads((run / "data.json").read_text())["class_names"] == [str(i) for i in range(10)]
    return run


@pytest.mark.slow
def test_train_prints_a_summary_of_the_run_in_a_real_process(write_recipe, tmp_path):
    path = write_recipe(EARLY_STOP)
    result = run_cli("train", str(path), "--runs-dir", "runs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = check_summary(result.stdout, tmp_path / "runs")
    assert run.parent == tmp_path / "runs" / "t"
    assert len(result.stdout.splitlines()) == 10  # the table (5 lines) and 5 lines: nothing else on stdout
    assert "Epoch 2/10" in result.stderr and "Epoch" not in result.stdout  # progress on stderr only
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
