"""A run's training state, written to checkpoints and restored from them, through two Keras callbacks.

Exact resume needs more than weights. A checkpoint (``cnnctl.training.checkpoint``) holds:

- every variable of the model (the seed states of Dropout and other random
  layers included), of the optimizer (its iteration count, moments, the learning
  rate ReduceLROnPlateau set) and, mid-epoch, of the metrics (the epoch's running
  means, so the resumed epoch logs what an uninterrupted one would);
- the position: epochs finished, then batches into the next one; the data
  pipeline replays from there (``Datasets.train_epochs``), its shuffle and
  augmentation being functions of the seed, epoch and step;
- the history rows, the best epoch, the fit time so far, and the counters of the
  Keras callbacks that keep any (EarlyStopping, ReduceLROnPlateau, SwapEMAWeights).

``EpochClock`` runs first among the callbacks: it tells the pipeline which epoch
to read, and after every step it stops on a non-finite loss, on a signal
(after writing a checkpoint) and writes the ``train.checkpoint_every`` ones.
``RunRecorder`` runs last: at each epoch's end it writes best.keras, the
checkpoint and history.csv, so what it saves holds what every other callback did.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cnnctl.errors import CnnctlError
from cnnctl.run import Run, atomic_write_text, layout, save_model_atomic
from cnnctl.training.checkpoint import Checkpoint, write_checkpoint
from cnnctl.training.options import monitor_mode

# The counters a Keras callback keeps between epochs (restored after its own on_train_begin resets them).
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "cooldown_counter", "best"),
    "SwapEMAWeights": ("_ema_weights_in_model",),
}


class NonFiniteLoss(CnnctlError):
    """The training loss became NaN or infinite: the job failed (exit 1)."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal (SIGINT: exit 130, SIGTERM: 143): at ``where`` after writing a checkpoint,
    or ``at_once`` on a second signal. A KeyboardInterrupt, so that no ``except Exception`` swallows it."""

    def __init__(self, where: str, exit_code: int, *, at_once: bool = False):
        super().__init__(where)
        self.where, self.exit_code, self.at_once = where, exit_code, at_once
        self.message = "stopped at once on a second signal" if at_once else f"training stopped at {where}"


class RunState:
    """Everything a checkpoint holds about one run, and the writing and restoring of it."""

    def __init__(self, run: Run, model: keras.Model, *, steps_per_epoch: int, callbacks: list,
                 keep: int, start: Checkpoint | None = None):
        self.run, self.model, self.steps_per_epoch = run, model, steps_per_epoch
        self.callbacks = callbacks  # the recipe's Keras callbacks, in order
        self.keep = keep
        self.start = start
        state = start.state if start else {}
        self.rows: list[dict] = state.get("rows", [])
        self.best: float | None = state.get("best")
        self.best_epoch: int | None = state.get("best_epoch")
        self.stopped_early: bool = state.get("stopped_early", False)
        self.train_seconds: float = state.get("train_seconds", 0.0)
        self.epochs_planned: int = state.get("epochs_planned", 0)
        self.resumes: list[dict] = state.get("resumes", []) + ([{"epoch": start.epoch, "step": start.step}]
                                                              if start else [])
        self.callback_state: list[dict] = state.get("callbacks", [])
        self.callback_arrays = {k: v for k, v in start.arrays.items() if k.startswith("callbacks/")} if start else {}
        self.signal: int | None = None  # set by the signal handler (stop_on_signals)
        self._fit_started: float | None = None

    # --- timing: fit time adds up across resumes -----------------------------------------------

    def fit_began(self) -> None:
        self._fit_started = time.perf_counter()

    def seconds(self) -> float:
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self.train_seconds + running

    # --- checkpoints ---------------------------------------------------------------------------

    def save(self, epoch: int, step: int, *, checked: bool = False) -> Path:
        """Checkpoint after ``epoch`` epochs and ``step`` batches of the next (metrics too, mid-epoch).

        Weights that are NaN or infinite are never saved: the run stops (a NaN input through a ReLU, for one,
        leaves the loss finite while it ruins the weights)."""
        if not checked:
            self.check_finite(epoch, step)
        self.capture_callbacks()
        model = self.model
        arrays = {**_variables("model", model.variables), **_variables("optimizer", model.optimizer.variables),
                  **self.callback_arrays}
        if step:
            arrays.update(_variables("metrics", self.model.metrics_variables))
        state = {"epoch": epoch, "step": step, "rows": self.rows, "best": self.best, "best_epoch": self.best_epoch,
                 "stopped_early": self.stopped_early, "train_seconds": self.seconds(),
                 "epochs_planned": self.epochs_planned, "resumes": self.resumes,
                 "callbacks": self.callback_state}
        return write_checkpoint(self.run.path, epoch=epoch, step=step, global_step=epoch * self.steps_per_epoch + step,
                                state=state, arrays=arrays, keep=self.keep)

    def check_finite(self, epoch: int, step: int) -> None:
        """Stop (NonFiniteLoss) if a weight is NaN or infinite after ``epoch`` epochs and ``step`` steps."""
        broken = [v.path for v in self.model.trainable_variables  # on the device: one boolean each comes back
                  if not bool(keras.ops.convert_to_numpy(keras.ops.all(keras.ops.isfinite(v))))]
        if broken:
            where = f"epoch {epoch + 1}, step {step}" if step else f"epoch {epoch}"
            raise NonFiniteLoss(f"the weights became NaN or infinite by {where} ({', '.join(broken[:3])}"
                                f"{', ...' if len(broken) > 3 else ''}), though the loss stayed finite")

    def restore_variables(self) -> None:
        """The model's and optimizer's variables from the starting checkpoint (both built by then)."""
        if self.start is None:
            return
        optimizer = self.model.optimizer
        if not optimizer.built:  # Keras builds it at the first step; its slots must exist to be assigned
            optimizer.build(self.model.trainable_variables)
        _assign("model", self.model.variables, self.start.arrays)
        _assign("optimizer", optimizer.variables, self.start.arrays)

    def restore_metrics(self) -> None:
        """The running metrics of a checkpoint taken mid-epoch (after Keras reset them for the epoch)."""
        if self.start is not None and self.start.step:
            _assign("metrics", self.model.metrics_variables, self.start.arrays)

    def capture_callbacks(self) -> None:
        self.callback_state, self.callback_arrays = [], {}
        for i, callback in enumerate(self.callbacks):
            name = type(callback).__name__
            values = {key: _plain(getattr(callback, key, None)) for key in CALLBACK_STATE.get(name, ())}
            self.callback_state.append({"class": name, "state": values})
            for j, weight in enumerate(getattr(callback, "best_weights", None) or []):  # EarlyStopping's best weights
                self.callback_arrays[f"callbacks/{i}/best_weights/{j:05d}"] = np.asarray(weight)

    def restore_callbacks(self) -> None:
        """Give the recipe's callbacks back the counters they had (after their on_train_begin reset them)."""
        for i, (callback, saved) in enumerate(zip(self.callbacks, self.callback_state, strict=False)):
            if type(callback).__name__ != saved["class"]:
                raise CnnctlError(f"the checkpoint's callback {i} is {saved['class']}, the recipe's is "
                                  f"{type(callback).__name__}: the recipe changed")
            for key, value in saved["state"].items():
                setattr(callback, key, value)
            weights = sorted(k for k in self.callback_arrays if k.startswith(f"callbacks/{i}/best_weights/"))
            if weights:
                callback.best_weights = [self.callback_arrays[k] for k in weights]


class EpochClock(keras.callbacks.Callback):
    """First callback: sets the epoch the training pipeline reads; after each step, the per-step duties.

    Those are: stop on a NaN or infinite loss (before anything saves it), stop
    on a signal after writing a checkpoint, and write ``train.checkpoint_every``
    checkpoints. A callback with a batch hook makes Keras wait for each step;
    Keras's progress bar already does, so this one costs little more.
    """

    def __init__(self, state: RunState, epoch_variable, *, checkpoint_every: int):
        super().__init__()
        self.state, self.epoch_variable = state, epoch_variable
        self.checkpoint_every = checkpoint_every
        self.epoch, self.offset, self.done = 0, 0, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_variable.assign(epoch)
        start = self.state.start
        self.epoch, self.done = epoch, 0
        self.offset = start.step if start is not None and start.step and epoch == start.epoch else 0
        if self.offset:
            self.state.restore_metrics()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.done = self.offset + batch + 1  # batches of this epoch trained, counting those before a resume
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLoss(f"the training loss became {loss} at epoch {self.epoch + 1}, step {self.done}")
        if self.state.signal is not None:
            self.stop_now()
        every = self.checkpoint_every
        global_step = self.epoch * self.state.steps_per_epoch + self.done
        if every and global_step % every == 0 and self.done < self.state.steps_per_epoch:
            self.state.save(self.epoch, self.done)

    def stop_now(self) -> None:
        """Checkpoint the steps taken so far in this epoch and stop (a signal arrived)."""
        if self.done:
            self.state.save(self.epoch, self.done)
        raise Interrupted(f"epoch {self.epoch + 1}, step {self.done} of {self.state.steps_per_epoch}",
                          exit_code(self.state.signal))


class RunRecorder(keras.callbacks.Callback):
    """Last callback: restores a resumed run's state at train begin; at each epoch end, best.keras,
    the checkpoint and history.csv, each written whole under a temporary name and renamed."""

    def __init__(self, state: RunState, monitor: str | None, mode: str):
        super().__init__()
        self.state = state
        self.monitor = monitor
        self.mode = monitor_mode(monitor, mode) if monitor else mode
        self.stop_after: int | None = None  # set for the one resumed, shortened epoch: stop once it ends
        self._restored = False
        (state.run / layout.CHECKPOINTS).mkdir(exist_ok=True)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self._restored:  # the first fit of this process: variables as the checkpoint left them
            self.state.restore_variables()
            self._restored = True
        self.state.restore_callbacks()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        state = self.state
        state.check_finite(epoch + 1, 0)  # before anything saves them
        logs = {k: float(v) for k, v in (logs or {}).items()}
        state.rows.append({"epoch": epoch + 1, **logs})
        value = logs.get(self.monitor) if self.monitor else None
        if value is not None and np.isfinite(value) and (
                state.best is None or (value > state.best if self.mode == "max" else value < state.best)):
            state.best, state.best_epoch = value, epoch + 1
            save_model_atomic(self.model, state.run / layout.BEST)  # before the checkpoint that names it best
        state.stopped_early = bool(self.model.stop_training)  # EarlyStopping, which ran before
        state.save(epoch + 1, 0, checked=True)
        write_history(state.run, state.rows)
        if self.stop_after == epoch:
            self.model.stop_training = True
        if state.signal is not None:
            raise Interrupted(f"the end of epoch {epoch + 1}", exit_code(state.signal))


def exit_code(signum: int | None) -> int:
    """The shell's exit status for a process ended by signal ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + (signum or signal.SIGINT)


@contextmanager
def stop_on_signals(state: RunState) -> Iterator[None]:
    """While training: SIGINT (Ctrl-C) and SIGTERM finish the current step, write a checkpoint and stop
    (``EpochClock``, ``RunRecorder``); a second one stops at once, leaving the checkpoints as they are."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def handler(signum, frame):
        if state.signal is not None:
            raise Interrupted("", exit_code(signum), at_once=True)
        state.signal = signum
        print(f"\n{signal.Signals(signum).name}: finishing this step, then writing a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def write_history(run: Run, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
    atomic_write_text(run / layout.HISTORY, "\n".join(lines) + "\n")


def _variables(prefix: str, variables: list) -> dict[str, np.ndarray]:
    return {f"{prefix}/{i:05d}": np.asarray(keras.ops.convert_to_numpy(v)) for i, v in enumerate(variables)}


def _assign(prefix: str, variables: list, arrays: dict[str, np.ndarray]) -> None:
    saved = sorted(k for k in arrays if k.startswith(f"{prefix}/"))
    if len(saved) != len(variables):
        raise CnnctlError(f"the checkpoint holds {len(saved)} {prefix} variables, this run has {len(variables)}: "
                          "the recipe changed since the checkpoint was written")
    for key, variable in zip(saved, variables, strict=True):
        value = arrays[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise CnnctlError(f"the checkpoint's {prefix} variable {variable.path} has shape {tuple(value.shape)}, "
                              f"this run's {tuple(variable.shape)}: the recipe changed since it was written")
        variable.assign(value)


def _plain(value: Any) -> Any:
    """A callback counter as JSON: numbers as Python numbers (inf too), booleans, None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if value is None:
        return None
    return float(value)
