"""Recipe -> a trained run directory: the run's files, ``fit``, then model.keras, test metrics and exports.

``train(recipe)`` checks everything that can reject the recipe (``prepare``),
then creates the run, writes data.json and the resolved recipe, trains with
Keras's own ``fit`` (the recipe's callbacks, class weights, dtype policy, XLA and
steps_per_execution), and writes model.keras, metrics.json and the recipe's
exports. ``cnnctl.training.resume`` continues a run from its newest valid
checkpoint (``cnnctl.training.state``) through ``run_training``, to the same
result an uninterrupted run gets. Keras's progress goes to stderr so that stdout
carries only results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any

import keras

from cnnctl.errors import CnnctlError, Stopped, first_line
from cnnctl.recipe import Recipe, dump_recipe
from cnnctl.run import Run, WriteError, atomic_write_text, layout, save_model_atomic
from cnnctl.training.callbacks import continue_csv_logs, place_in_run
from cnnctl.training.checkpoint import Checkpoint
from cnnctl.training.metrics import run_metrics
from cnnctl.training.preflight import PLACEHOLDER_RUN, Prepared, for_outputs, prepare, undecodable_files
from cnnctl.training.state import EpochClock, Interrupted, NonFiniteLoss, RunRecorder, RunState, stop_on_signals
from cnnctl.training.summary import retry_command


@dataclass
class TrainResult:
    """A trained (or resumed) run and its metrics.json."""

    run: Run
    metrics: dict

    @property
    def failed_exports(self) -> dict[str, str]:
        """The recipe's exports that were not written, by label: why (``cnnctl export`` writes them again)."""
        return failed_exports(self.metrics)


def failed_exports(metrics: dict) -> dict[str, str]:
    """Labels of the exports metrics.json records as failed or not written, with the reason."""
    return {label: record["error"] for label, record in metrics.get("exports", {}).items() if "error" in record}


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``learning_rate`` to each epoch's logs (history.csv, progress): the optimizer's rate when the
    epoch ends (a schedule's value at the steps taken so far), before a callback such as ReduceLROnPlateau
    changes it. It runs right after the EpochClock. Keras's own TensorBoard callback logs the same value."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def train(recipe: Recipe, runs_dir: str = "runs", *, progress: bool = True,
          announce: Callable[[Run], None] | None = None) -> TrainResult:
    """Train ``recipe`` into a new run directory under ``runs_dir``; return it and its metrics."""
    started = time.perf_counter()
    determinism(recipe)
    plan = prepare(recipe)  # a recipe error leaves no run directory behind
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    run = Run.create(runs_dir, recipe.name)
    if announce is not None:  # once the recipe has passed every check and the run exists
        announce(run)
    with run.locked():
        with stopped_as(f"interrupted while creating {run.path}; nothing was trained: delete it and train again"):
            run.write_json(layout.DATA, plan.data.record().to_json())  # the classes and normalization eval reuses
            atomic_write_text(run / layout.RECIPE, dump_recipe(recipe))  # last: with it, the folder is a run
        return run_training(recipe, plan, run, None, progress=progress, started=started)


@contextmanager
def stopped_as(message: str) -> Iterator[None]:
    """A Ctrl-C in this block stops with ``message`` (what was kept, what to do); training's own Interrupted and
    Stopped already say it."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if isinstance(exc, (Interrupted, Stopped)):
            raise
        raise Stopped(message) from None


def determinism(recipe: Recipe) -> None:
    """``train.deterministic``: TensorFlow's deterministic ops, for this process (they cannot be turned off)."""
    if recipe.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def run_training(recipe: Recipe, plan: Prepared, run: Run, start: Checkpoint | None, *, progress: bool,
                 started: float) -> TrainResult:
    """Fit from ``start`` (or the beginning), then write model.keras, metrics.json and the exports."""
    with stopped_as(f"interrupted before the first epoch started; {run.path} holds no checkpoint: resume it with "
                    f"cnnctl train --resume {run.path}, or delete it" if start is None else
                    f"interrupted before training resumed; {run.path} is as it was: resume it again with "
                    f"cnnctl train --resume {run.path}"):
        session = _start(recipe, plan, run, start)
    data, state = plan.data, session.state
    kept = f"; the checkpoints of the epochs before are kept in {run / layout.CHECKPOINTS}"
    try:
        with redirect_stdout(sys.stderr), undecodable_files(data, kept), stop_on_signals(state):
            _fit(recipe, plan, session, start, progress=progress)
    except NonFiniteLoss as exc:
        raise _failed(recipe, run, state, exc) from None
    except Interrupted as exc:
        run.update_json(layout.METRICS, name=recipe.name, status="interrupted")
        exc.message += (f"; the checkpoints written so far are kept in {run / layout.CHECKPOINTS}. Resume with: "
                        f"cnnctl train --resume {run.path}")
        raise
    except WriteError as exc:
        raise WriteError(f"{exc}; nothing written before is lost: free space, then resume with: "
                         f"cnnctl train --resume {run.path}") from None
    return _finish(recipe, plan, session, started=started)


def _start(recipe: Recipe, plan: Prepared, run: Run, start: Checkpoint | None) -> _Session:
    """The run's state (restored from ``start``) and the callbacks ``fit`` gets."""
    import tensorflow as tf

    from cnnctl.tensorboard.callbacks import tensorboard_callbacks  # [] when log.tensorboard is off

    model, data = plan.model, plan.data
    place_in_run(plan.callbacks, PLACEHOLDER_RUN, run.path)
    # cnnctl stops on a NaN or infinite loss itself, after every step: Keras's TerminateOnNaN is not needed
    extra = [c for c in plan.callbacks if not isinstance(c, keras.callbacks.TerminateOnNaN)]
    if start is not None:
        continue_csv_logs(extra, start.epoch)
    state = RunState(run, model, steps_per_epoch=plan.steps_per_epoch, callbacks=extra,
                     keep=recipe.train.keep_checkpoints, start=start)
    epoch = tf.Variable(start.epoch if start else 0, dtype=tf.int64, trainable=False)
    recorder = RunRecorder(state, recipe.train.monitor, recipe.train.mode)
    callbacks = [EpochClock(state, epoch, checkpoint_every=recipe.train.checkpoint_every), LearningRateLog(),
                 *extra, *tensorboard_callbacks(recipe, run, model, data), recorder]  # the recorder last
    return _Session(state, recorder, callbacks, epoch)


@dataclass
class _Session:
    """One process's training of a run: its state, its callbacks, the epoch variable the pipeline reads."""

    state: RunState
    recorder: RunRecorder
    callbacks: list
    epoch: Any  # tf.Variable

    @property
    def run(self) -> Run:
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
    """model.keras and the test metrics: the run is ``completed``; then the exports, each on its own."""
    from cnnctl.serving.evaluate import measure

    model, data, run = plan.model, plan.data, session.run
    with stopped_as(f"interrupted while writing {run / layout.MODEL} (an earlier one is kept whole); finish the run "
                    f"with: cnnctl train --resume {run.path}"):
        save_model_atomic(model, run / layout.MODEL)
    metrics = run_metrics(recipe, plan, session.state)
    try:
        if data.sizes["test"] > 0:
            with undecodable_files(data):
                metrics["test"] = measure(model, data["test"])  # as cnnctl eval measures it
    except KeyboardInterrupt:
        raise Stopped(f"interrupted while measuring the test split; training had finished and "
                                   f"{run / layout.MODEL} is written. Measure and export with: cnnctl train "
                                   f"--resume {run.path} (no epoch is trained again)") from None
    metrics["wall_seconds"] = round(time.perf_counter() - started, 3)
    run.write_json(layout.METRICS, metrics)  # completed, whatever the exports do
    if recipe.export:
        metrics["exports"] = _write_exports(recipe, run, model, data)
    return TrainResult(run=run, metrics=metrics)


def _write_exports(recipe: Recipe, run: Run, model: keras.Model, data: Any) -> dict:
    """Write the recipe's exports in order. Each is recorded in metrics.json as not written before it starts,
    then replaced by its check when it succeeds, or by its one-line reason when it fails; a failure does not
    stop the others (``cnnctl export`` retries it)."""
    from cnnctl.exports.writer import export_spec, write_export

    exports = run.metrics().get("exports", {})
    for entry in recipe.export:
        spec = export_spec(entry)
        pending = {"format": spec.format, "quantize": spec.quantize}
        exports[spec.label] = {**pending, "error": "not written: cnnctl train stopped before this export finished"}
        run.update_json(layout.METRICS, exports=exports)
        try:
            exports[spec.label] = write_export(spec, run, model, data, recipe)  # it records its check itself
            continue
        except KeyboardInterrupt:
            raise Stopped(
                f"interrupted while exporting {spec.label}; training had finished ({run / layout.MODEL}, status "
                f"completed). Write the missing exports with: {retry_command(pending, str(run.path))}") from None
        except CnnctlError as exc:
            reason = str(exc)
        except Exception as exc:  # a converter's own failure: the trained run is kept, the export recorded as failed
            reason = f"{type(exc).__name__}: {first_line(exc)}"
        exports[spec.label] = {**pending, "error": reason}
        run.update_json(layout.METRICS, exports=exports)
        print(f"warning: the {spec.label} export failed: {reason}", file=sys.stderr)
    return exports


def _failed(recipe: Recipe, run: Run, state: RunState, exc: NonFiniteLoss) -> CnnctlError:
    """A diverged run: marked failed in metrics.json; its last good checkpoint is kept."""
    done = len(state.rows)
    kept = (f"the last good checkpoint (epoch {done}) is kept in {run / layout.CHECKPOINTS}" if done else
            "no epoch had finished")
    message = (f"training stopped: {exc}; {kept}. Likely causes: a learning rate too high for this model "
               "(train.optimizer), inputs that are not normalized (data.normalize), or a loss that does not match "
               "the outputs (from_logits). Fix the recipe and train again, or resume from the last checkpoint with "
               f"cnnctl train --resume {run.path} --set KEY=VALUE --force")
    run.update_json(layout.METRICS, name=recipe.name, status="failed", error=message, epochs=done)
    return CnnctlError(message)


