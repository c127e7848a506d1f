"""TensorBoard logs of a run (``log.tensorboard``), written at epoch ends only.

Keras's own ``keras.callbacks.TensorBoard`` (``EpochTensorBoard``) writes the scalars,
the graph, the weight histograms and the profiler trace into ``logs/train`` and
``logs/validation``; ``EpochImages`` writes what Keras does not draw into ``logs/``
itself (a run of its own): ``train_inputs``, ``conv_filters``,
``confusion_matrix/validation`` (images at step = epoch, counted from 0, as Keras
counts its scalars) and the hparams. docs/tensorboard.md lists every tag and folder.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import keras
import numpy as np

from cnnctl.data.pipeline import Datasets
from cnnctl.errors import first_line
from cnnctl.recipe import Recipe
from cnnctl.run import Run, layout
from cnnctl.serving.confusion import confusion_matrix, render_confusion, summary
from cnnctl.tensorboard.hparams import hparam_metrics, write_experiment, write_hparams
from cnnctl.tensorboard.images import display, filter_tiles, first_conv, input_sample, tile_grid

INPUTS_TAG = "train_inputs"
FILTERS_TAG = "conv_filters"
CONFUSION_TAG = "confusion_matrix/validation"
MAX_CONFUSION_EXAMPLES = 10_000  # validation examples predicted for the matrix each epoch


def tensorboard_callbacks(recipe: Recipe, run: Run, model: keras.Model, data: Datasets) -> list:
    """The callbacks that write the run's TensorBoard logs under ``run/logs``; [] when log.tensorboard is off."""
    spec = recipe.log.tensorboard
    if not spec:
        return []
    logs = run / layout.LOGS
    profile = spec.profile_batch
    # a resumed run's graph is in logs/train already: a second one makes TensorBoard warn on every load
    graph = spec.write_graph and not any((logs / "train").glob("events.out.tfevents.*"))
    keras_tb = EpochTensorBoard(log_dir=str(logs), histogram_freq=spec.histogram_freq, write_graph=graph,
                                profile_batch=tuple(profile) if isinstance(profile, list) else profile)
    images = EpochImages(str(logs), recipe=recipe, run=run, model=model, data=data)
    return [keras_tb, images] if images.active else [keras_tb]


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback, writing at epoch ends only.

    Keras's own defines batch hooks even with ``update_freq="epoch"``, which makes
    Keras wait for every training step (KERAS_NOTES). Unless a profile is asked for,
    this one drops them and writes the op graph at the first epoch end instead of
    after the first batch. The learning rate it logs is the one ``LearningRateLog``
    put into the epoch's logs (history.csv's), read before ReduceLROnPlateau changes it.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(update_freq="epoch", **kwargs)
        if not self._should_trace:
            base = keras.callbacks.Callback
            for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin"):
                setattr(self, hook, types.MethodType(getattr(base, hook), self))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._should_write_train_graph:
            self._write_keras_model_train_graph()
            self._should_write_train_graph = False
        super().on_epoch_end(epoch, logs)

    def _write_keras_model_train_graph(self) -> None:
        """Keras 3.15's train_function is a plain Python function, whose graph its TensorBoard skips: write the
        op graph of the model's forward pass (inference mode) instead."""
        if hasattr(self.model.train_function, "function_spec"):
            super()._write_keras_model_train_graph()
            return
        import tensorflow as tf

        model = self.model
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in getattr(model, "inputs", None) or []]
        if not specs:
            return
        forward = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False))
        try:
            graph = forward.get_concrete_function(*specs).graph
        except Exception as exc:  # a model TensorFlow cannot trace must not end the run at its first epoch
            print(f"warning: TensorBoard: the model's op graph was not written ({first_line(exc)})", file=sys.stderr)
            return
        with self._train_writer.as_default():
            tf.summary.graph(graph)

    def _log_weights(self, epoch: int) -> None:
        """Keras's weight histograms, same tags and buckets, computed in NumPy and written as one summary: 4 ms
        instead of Keras's 72 ms (eager TF ops, one per weight) for the 12 weights of recipes/digits_cnn.yaml."""
        import tensorflow as tf
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.histogram import summary_v2 as histogram

        summary = summary_pb2.Summary()
        for layer in self.model.layers:
            for weight in layer.weights:
                values = keras.ops.convert_to_numpy(weight).astype(np.float32)
                summary.value.extend(histogram.histogram_pb(f"{weight.path.replace(':', '_')}/histogram", values).value)
        with self._train_writer.as_default():
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=epoch)
        self._train_writer.flush()

    def _collect_learning_rate(self, logs: dict) -> dict:
        if "learning_rate" in logs:
            return logs
        return super()._collect_learning_rate(logs)


class EpochImages(keras.callbacks.Callback):
    """Input images, conv filters, the confusion matrix (each epoch) and the hparams (once) in ``logdir``.

    The hparams: the run's values when training starts, the experiment (their names and
    the metrics the model logs, known once its metrics are built) at the first epoch end.
    Each part is skipped where it cannot apply: input images when the inputs are
    not images (see ``shows_images``), conv filters when the
    model has no Conv2D, DepthwiseConv2D, SeparableConv2D or Conv1D layer, the
    confusion matrix when there is no validation split, when the model has several
    outputs, or when its output is not one vector of ``num_classes`` scores.
    """

    def __init__(self, logdir: str, *, recipe: Recipe, run: Run, model: keras.Model, data: Datasets):
        super().__init__()
        spec = recipe.log.tensorboard
        self.logdir = logdir
        self.recipe, self.run, self.data = recipe, run, data
        self.inputs = input_sample(data, recipe.data, recipe.seed, spec.input_images) if spec.input_images else None
        self.conv = first_conv(model) if spec.conv_filters else None
        self.confusion = spec.confusion_matrix and confusion_applies(model, data)
        self.hparams = spec.hparams
        self._hparam_names: list[str] | None = None  # set when the values are written; the experiment is due
        self.active = any(x is not None and x is not False for x in (self.inputs, self.conv, self.confusion)) or \
            self.hparams
        self._writer = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        import tensorflow as tf

        self._writer = tf.summary.create_file_writer(self.logdir)
        if self.hparams:
            with self._writer.as_default():
                self._hparam_names = write_hparams(self.recipe, self.run, self.model, self.data)
            self._writer.flush()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import tensorflow as tf

        with self._writer.as_default(step=epoch):
            if self._hparam_names is not None:
                write_experiment(self._hparam_names, hparam_metrics(self.model, logs or {}))
                self._hparam_names = None
            if self.inputs is not None:
                x, labels, transform = self.inputs
                grid = tile_grid(display(transform(x)), [self.data.class_names[int(i)] for i in labels])
                tf.summary.image(INPUTS_TAG, grid[None], description="training inputs after augmentation and "
                                 "normalization, each rescaled to 0-255 for display; captions: their classes")
            if self.conv is not None:
                tiles = filter_tiles(self.conv)
                tf.summary.image(FILTERS_TAG, tile_grid(tiles, min_side=32)[None],
                                 description=f"kernels of {self.conv.name} ({type(self.conv).__name__}), "
                                             "one tile per filter, each min-max scaled")
            if self.confusion:
                self._write_confusion(epoch)
        self._writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()

    def _write_confusion(self, epoch: int) -> None:
        import tensorflow as tf

        y_true, y_pred = validation_predictions(self.model, self.data)
        cm = confusion_matrix(y_true, y_pred, self.data.num_classes)
        accuracy = summary(cm)["accuracy"]
        image = render_confusion(cm, self.data.class_names,
                                 title=f"validation, epoch {epoch + 1}: {cm.sum()} examples, accuracy {accuracy:.4f}")
        tf.summary.image(CONFUSION_TAG, image[None], description=f"rows: true class, columns: predicted; "
                         f"{int(cm.sum())} validation examples; colours: share of the row")


def confusion_applies(model: keras.Model, data: Datasets) -> bool:
    """A validation split, one output, and that output one vector of ``num_classes`` class scores."""
    if data.sizes.get("validation", 0) == 0 or len(model.outputs) != 1:
        return False
    shape = tuple(model.outputs[0].shape)
    return len(shape) == 2 and shape[-1] == data.num_classes and data.num_classes > 1


def validation_predictions(model: keras.Model, data: Datasets,
                           limit: int = MAX_CONFUSION_EXAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class indices of the first ``limit`` validation examples, in inference mode."""
    true, predicted, have = [], [], 0
    for x, y in data["validation"]:
        scores = model.predict_on_batch(x)
        true.append(np.asarray(y).reshape(-1))
        predicted.append(np.argmax(np.asarray(scores), axis=-1).reshape(-1))
        have += len(true[-1])
        if have >= limit:
            break
    return np.concatenate(true)[:limit], np.concatenate(predicted)[:limit]


