"""Model + datasets -> a trained run directory (DESIGN 2), and the resumption of one.

``train(recipe)`` checks everything that can reject the recipe (``prepare``),
then creates the run, writes the resolved recipe, trains with Keras's own
``fit`` (the recipe's callbacks, class weights, dtype policy, XLA and
steps_per_execution), and writes model.keras, metrics.json and the recipe's
exports. ``resume(run, recipe)`` continues a run from its newest valid
checkpoint (``cnnctl.runstate``) to the same result an uninterrupted run gets.
Keras's progress goes to stderr so that stdout carries only results.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

import cnnctl
from cnnctl import checkpoint
from cnnctl.callbacks import build_callbacks, make_parent_dirs
from cnnctl.checkpoint import Checkpoint
from cnnctl.data.report import data_record
from cnnctl.errors import CnnctlError, UserError
from cnnctl.prepare import (  # noqa: F401  (check_training, compile_model: the API callers know from here)
    Prepared,
    check_training,
    compile_model,
    for_outputs,
    has_schedule,
    prepare,
    undecodable_files,
)
from cnnctl.recipe import Recipe, dump_recipe
from cnnctl.rundir import RunDir, WriteError, atomic_write_text, save_model_atomic
from cnnctl.runstate import EpochClock, Interrupted, NonFiniteLoss, RunRecorder, RunState, stop_on_signals
from cnnctl.train_options import monitor_mode


@dataclass
class TrainResult:
    run: RunDir
    metrics: dict


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` to each epoch's logs (history.csv, progress): the optimizer's rate when the
    epoch ends (a schedule's value at the steps taken so far), before a callback such as ReduceLROnPlateau
    changes it. It runs right after the EpochClock. Keras's own TensorBoard callback logs the same value."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def versions() -> dict:
    import tensorflow as tf

    return {"cnnctl": cnnctl.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def train(recipe: Recipe, runs_dir: str = "runs", *, progress: bool = True,
          announce: Callable[[RunDir], None] | None = None) -> TrainResult:
    """Train ``recipe`` into a new run directory under ``runs_dir``; return it and its metrics."""
    started = time.perf_counter()
    _determinism(recipe)
    plan = prepare(recipe)  # a recipe error leaves no run directory behind
    run = RunDir.create(runs_dir, recipe.name)
    if announce is not None:  # once the recipe has passed every check and the run exists
        announce(run)
    with run.locked():
        atomic_write_text(run / "recipe.yaml", dump_recipe(recipe))
        run.write_json("data.json", data_record(plan.data))  # the classes and normalization eval and export reuse
        return _run(recipe, plan, run, None, progress=progress, started=started)


def resume(run: RunDir, recipe: Recipe, *, progress: bool = True) -> TrainResult:
    """Continue ``run`` from its newest valid checkpoint; ``recipe`` is the run's own (see ``cnnctl.resume``).

    A run killed before its first checkpoint starts again from the beginning, in
    the same directory; one whose training had ended is finished (model.keras,
    test metrics, exports) or, with more ``train.epochs``, trained further.
    """
    started = time.perf_counter()
    _determinism(recipe)
    with run.locked():  # a second process resuming the same run is refused here, before any work
        checkpoint.clean(run.path)  # what a killed writer left half-written
        run.remove_leftovers()
        start = checkpoint.latest_checkpoint(run.path)
        checkpoint.discard_after(run.path, start)  # damaged checkpoints the resumed run will write over
        if start is not None and recipe.train.epochs < start.epoch + (1 if start.step else 0):
            raise UserError(f"{run.path} has trained {start.epoch + (1 if start.step else 0)} epochs already; "
                            f"train.epochs={recipe.train.epochs} is fewer: give at least that many")
        done = run.read_json("metrics.json") if (run / "metrics.json").is_file() else {}
        if done.get("status") == "completed" and done.get("training", {}).get("epochs_planned") == recipe.train.epochs:
            print(f"{run.path} has finished its {recipe.train.epochs} epochs: nothing to resume (give "
                  "--set train.epochs=N to train it further)", file=sys.stderr)
            return TrainResult(run=run, metrics=done)
        stored = run.read_json("data.json") if (run / "data.json").is_file() else {}
        plan = prepare(recipe, normalization=stored.get("normalization"))
        _check_same_data(plan, stored, run)
        atomic_write_text(run / "recipe.yaml", dump_recipe(recipe))  # train.epochs may have grown
        where = "the beginning (no checkpoint was written)" if start is None else _position(start, plan)
        print(f"resuming {run.path} from {where}", file=sys.stderr)
        return _run(recipe, plan, run, start, progress=progress, started=started)


def _determinism(recipe: Recipe) -> None:
    """``train.deterministic``: TensorFlow's deterministic ops, for this process (they cannot be turned off)."""
    if recipe.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _run(recipe: Recipe, plan: Prepared, run: RunDir, start: Checkpoint | None, *, progress: bool,
         started: float) -> TrainResult:
    """Fit from ``start`` (or the beginning), then write model.keras, metrics.json and the exports."""
    import tensorflow as tf

    model, data = plan.model, plan.data
    extra = build_callbacks(recipe, run.path, logged=plan.logged, has_validation=plan.has_validation,
                            schedule=has_schedule(recipe))
    make_parent_dirs(extra)
    # cnnctl stops on a NaN or infinite loss itself, after every step: Keras's TerminateOnNaN is not needed
    extra = [c for c in extra if not isinstance(c, keras.callbacks.TerminateOnNaN)]
    if start is not None:
        _continue_csv_logs(extra, start.epoch)
    state = RunState(run, model, steps_per_epoch=plan.steps_per_epoch, callbacks=extra,
                     keep=recipe.train.keep_checkpoints, start=start)
    epoch = tf.Variable(start.epoch if start else 0, dtype=tf.int64, trainable=False)
    recorder = RunRecorder(state, recipe.train.monitor, recipe.train.mode)
    from cnnctl.tblog import tensorboard_callbacks  # [] when log.tensorboard is off

    callbacks = [EpochClock(state, epoch, checkpoint_every=recipe.train.checkpoint_every), LearningRateLog(),
                 *extra, *tensorboard_callbacks(recipe, run, model, data), recorder]  # the recorder last
    session = _Session(state, recorder, callbacks, epoch)
    kept = f"; the checkpoints of the epochs before are kept in {run / 'checkpoints'}"
    try:
        with redirect_stdout(sys.stderr), undecodable_files(data, kept), stop_on_signals(state):
            _fit(recipe, plan, session, start, progress=progress)
    except NonFiniteLoss as exc:
        raise _failed(recipe, run, state, exc) from None
    except Interrupted as exc:
        run.update_json("metrics.json", name=recipe.name, status="interrupted")
        exc.message += (f"; the checkpoints written so far are kept in {run / 'checkpoints'}. Resume with: "
                        f"cnnctl train --resume {run.path}")
        raise
    except WriteError as exc:
        raise WriteError(f"{exc}; nothing written before is lost: free space, then resume with: "
                         f"cnnctl train --resume {run.path}") from None
    return _finish(recipe, plan, session, started=started)


@dataclass
class _Session:
    """One process's training of a run: its state, its callbacks, the epoch variable the pipeline reads."""

    state: RunState
    recorder: RunRecorder
    callbacks: list
    epoch: Any  # tf.Variable

    @property
    def run(self) -> RunDir:
        return self.state.run


def _fit(recipe: Recipe, plan: Prepared, session: _Session, start: Checkpoint | None, *, progress: bool) -> None:
    """``model.fit`` from ``start``: a resumed, shortened epoch first when the checkpoint is mid-epoch.

    Every epoch reads the batches the pipeline makes for its number (set by the
    EpochClock), so an uninterrupted run and a resumed one read the same ones.
    A run that ended (every epoch, or EarlyStopping) gets a fit of no epochs,
    which ends it as Keras ends one (EarlyStopping's best weights, EMA weights).
    """
    model, data = plan.model, plan.data
    state, recorder, epoch = session.state, session.recorder, session.epoch
    outputs = len(model.outputs)
    planned = recipe.train.epochs
    first = start.epoch if start else 0
    if start is not None and start.state.get("stopped_early") and planned <= start.state.get("epochs_planned", 0):
        planned = first  # EarlyStopping had ended it: nothing is left to train
    state.epochs_planned = recipe.train.epochs
    common = {"validation_data": for_outputs(data["validation"], outputs) if plan.has_validation else None,
              "class_weight": plan.class_weight, "callbacks": session.callbacks,
              "shuffle": False,  # the pipeline shuffles
              "verbose": (1 if sys.stderr.isatty() else 2) if progress else 0}  # a log file: a line per epoch
    state.fit_began()
    if start is not None and start.step and first < planned:
        # The epoch's running metrics are restored into the metrics' variables, which Keras creates when it
        # first computes them: one evaluation of a batch (which changes no weight) creates them now.
        model.evaluate(for_outputs(data["train"].take(1), outputs), verbose=0)
        shortened = data.train_epochs(first, first + 1, start.step).apply(
            _cardinality(plan.steps_per_epoch - start.step))
        recorder.stop_after = first
        with _end_deferred(model, state.callbacks, until=first + 1 < planned):
            model.fit(for_outputs(shortened, outputs), epochs=planned, initial_epoch=first, **common)
        recorder.stop_after = None
        first += 1
        if state.stopped_early or first >= planned:
            return
    epoch.assign(first)
    model.fit(for_outputs(data.train_epoch_of(epoch), outputs), epochs=planned, initial_epoch=first, **common)


@contextmanager
def _end_deferred(model: keras.Model, callbacks: list, *, until: bool):
    """While ``until``: the end-of-fit work that belongs to the end of training (EarlyStopping's restoring of
    its best weights, the optimizer's EMA weights) is held back for the fit that follows, and done here if
    the shortened epoch ends training after all (EarlyStopping stopped it)."""
    if not until:
        yield
        return
    held = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    for c in held:
        c.on_train_end = lambda logs=None: None
    model.optimizer.finalize_variable_values = lambda variables: None
    try:
        yield
    finally:
        for c in held:
            del c.on_train_end
        del model.optimizer.finalize_variable_values
    if model.stop_training:  # EarlyStopping ended training at the shortened epoch: end it as Keras would
        model.optimizer.finalize_variable_values(model.trainable_weights)
        for c in held:
            c.on_train_end()


def _cardinality(count: int):
    import tensorflow as tf

    return tf.data.experimental.assert_cardinality(count)


def _finish(recipe: Recipe, plan: Prepared, session: _Session, *, started: float) -> TrainResult:
    model, data, run = plan.model, plan.data, session.run
    save_model_atomic(model, run / "model.keras")
    metrics = _metrics(recipe, plan, session.state)
    if data.sizes["test"] > 0:
        with undecodable_files(data):
            test = model.evaluate(for_outputs(data["test"], len(model.outputs)), return_dict=True, verbose=0)
        metrics["test"] = {k: float(v) for k, v in test.items()}
    metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
    if recipe.export:  # "completed" once the exports are written too: a run killed before is resumed to write them
        run.write_json("metrics.json", {**metrics, "status": "exporting"})
        from cnnctl.export import write_export

        for fmt in recipe.export:
            write_export(fmt, run, model, data)  # each records its check in metrics.json
        metrics["exports"] = run.read_json("metrics.json").get("exports", {})
    run.write_json("metrics.json", metrics)
    return TrainResult(run=run, metrics=metrics)


def _failed(recipe: Recipe, run: RunDir, state: RunState, exc: NonFiniteLoss) -> CnnctlError:
    """A diverged run: marked failed in metrics.json; its last good checkpoint is kept."""
    done = len(state.rows)
    kept = (f"the last good checkpoint (epoch {done}) is kept in {run / 'checkpoints'}" if done else
            "no epoch had finished")
    message = (f"training stopped: {exc}; {kept}. Likely causes: a learning rate too high for this model "
               "(train.optimizer), inputs that are not normalized (data.normalize), or a loss that does not match "
               "the outputs (from_logits). Fix the recipe and train again, or resume from the last checkpoint with "
               f"cnnctl train --resume {run.path} --set KEY=VALUE --force")
    run.update_json("metrics.json", name=recipe.name, status="failed", error=message, epochs=done)
    return CnnctlError(message)


def _metrics(recipe: Recipe, plan: Prepared, state: RunState) -> dict[str, Any]:
    """metrics.json, but for the test split and the wall time."""
    rows = state.rows
    last = {k: v for k, v in rows[-1].items() if k not in ("epoch", "learning_rate")} if rows else {}
    epochs = len(rows)
    metrics: dict[str, Any] = {
        "name": recipe.name,
        "status": "completed",
        "epochs": epochs,
        "train": {k: v for k, v in last.items() if not k.startswith("val_")},
        "validation": {k[4:]: v for k, v in last.items() if k.startswith("val_")},
    }
    if state.best_epoch is not None:
        mode = monitor_mode(recipe.train.monitor, recipe.train.mode)
        metrics["best"] = {"monitor": recipe.train.monitor, "mode": mode, "value": state.best,
                           "epoch": state.best_epoch}
    model = plan.model
    seconds = max(state.seconds(), 1e-9)
    metrics.update({
        "examples": plan.data.sizes,
        "params": model.count_params(),
        "train_seconds": round(seconds, 3),
        "images_per_sec": round(plan.data.sizes["train"] * epochs / seconds, 1),
        "training": {
            "epochs_planned": recipe.train.epochs,
            "stopped_by": _stopped_by(state.callbacks, epochs, recipe.train.epochs),
            "steps_per_epoch": plan.steps_per_epoch,
            "steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
            "learning_rate": rows[-1]["learning_rate"] if rows else None,
            "mixed_precision": plan.policy,
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": recipe.train.steps_per_execution,
            "class_weight": {str(k): v for k, v in plan.class_weight.items()} if plan.class_weight else None,
            "resumed": state.resumes,
        },
        "versions": versions(),
    })
    return metrics


def _stopped_by(callbacks: list, epochs: int, planned: int) -> str | None:
    """Which callback ended training before train.epochs, if one did."""
    if epochs >= planned:
        return None
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.EarlyStopping) and callback.stopped_epoch > 0:
            return "EarlyStopping"
    return "a callback"


def _position(start: Checkpoint, plan: Prepared) -> str:
    if start.step:
        return f"epoch {start.epoch + 1}, step {start.step} of {plan.steps_per_epoch}"
    return f"the end of epoch {start.epoch}"


def _check_same_data(plan: Prepared, stored: dict, run: RunDir) -> None:
    """The resumed run must read the data it started with: the same classes and split sizes."""
    data = plan.data
    if stored.get("class_names") not in (None, data.class_names):
        raise UserError(f"{run.path}: the data's classes changed since the run started "
                        f"({stored['class_names']} then, {data.class_names} now); a resumed run must read the "
                        "same data: restore it, or train a new run")
    sizes = stored.get("sizes") or stored.get("examples")
    if sizes and {k: int(v) for k, v in sizes.items()} != {k: int(v) for k, v in data.sizes.items()}:
        raise UserError(f"{run.path}: the data's split sizes changed since the run started ({sizes} then, "
                        f"{data.sizes} now); a resumed run must read the same data: restore it, or train a new run")


def _continue_csv_logs(callbacks: list, epochs_done: int) -> None:
    """CSVLogger files of a resumed run: keep the rows of the epochs the checkpoint holds, then append."""
    import csv
    import io

    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.CSVLogger):
            continue
        callback.append = True
        try:
            with open(callback.filename, newline="") as f:
                rows = list(csv.reader(f))
        except FileNotFoundError:
            continue
        kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < epochs_done]  # 0-based
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        atomic_write_text(Path(callback.filename), text.getvalue())
