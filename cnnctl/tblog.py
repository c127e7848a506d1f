"""TensorBoard logs of a run (``log.tensorboard``), written at epoch ends only.

Keras's own ``keras.callbacks.TensorBoard`` (``EpochTensorBoard``) writes the scalars,
the graph, the weight histograms and the profiler trace into ``logs/train`` and
``logs/validation``; ``EpochImages`` writes what Keras does not draw into ``logs/``
itself (a run of its own): ``train_inputs``, ``conv_filters``,
``confusion_matrix/validation`` (images at step = epoch, counted from 0, as Keras
counts its scalars) and the hparams. docs/tensorboard.md lists every tag and folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import sys
import time
import types
from typing import Any

import keras
import numpy as np

from cnnctl.confusion import font
from cnnctl.data import Datasets
from cnnctl.errors import first_line
from cnnctl.recipe import Recipe
from cnnctl.recipe.graph import split_spec
from cnnctl.rundir import RunDir

INPUTS_TAG = "train_inputs"
FILTERS_TAG = "conv_filters"
CONFUSION_TAG = "confusion_matrix/validation"
MAX_CONFUSION_EXAMPLES = 10_000  # validation examples predicted for the matrix each epoch
MAX_FILTERS = 256  # kernels shown; a wider first layer shows its first 256


def tensorboard_callbacks(recipe: Recipe, run: RunDir, model: keras.Model, data: Datasets) -> list:
    """The callbacks that write the run's TensorBoard logs under ``run/logs``; [] when log.tensorboard is off."""
    spec = recipe.log.tensorboard
    if not spec:
        return []
    logs = run / "logs"
    profile = spec.profile_batch
    keras_tb = EpochTensorBoard(log_dir=str(logs), histogram_freq=spec.histogram_freq, write_graph=spec.write_graph,
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

    def __init__(self, logdir: str, *, recipe: Recipe, run: RunDir, model: keras.Model, data: Datasets):
        super().__init__()
        spec = recipe.log.tensorboard
        self.logdir = logdir
        self.recipe, self.run, self.data = recipe, run, data
        self.inputs = _input_sample(recipe, data, spec.input_images) if spec.input_images else None
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
                grid = tile_grid(_display(transform(x)), [self.data.class_names[int(i)] for i in labels])
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

        from cnnctl.confusion import confusion_matrix, render_confusion, summary

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


def _input_sample(recipe: Recipe, data: Datasets, count: int):
    """(raw examples, labels, transform): the first ``count`` training examples as stored, and a transform that
    augments and normalizes them as training does, with its own seeded copy of the augmentation layers (so
    drawing the grid never takes random draws from the training pipeline). None when inputs are not images."""
    if not shows_images(data.element_shape) or "train" not in data.raw:
        return None
    from cnnctl.data import preprocess

    xs, ys, have = [], [], 0
    for x, y in data.raw["train"]:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y).reshape(-1))
        have += len(ys[-1])
        if have >= count:
            break
    x, y = np.concatenate(xs)[:count], np.concatenate(ys)[:count]
    with contextlib.redirect_stderr(io.StringIO()):  # its warnings were printed when the data was built
        augment = preprocess.augmentation_layers(recipe, data.value_range, tuple(data.stored_shape))
    record = data.normalization
    kind = record.get("normalize", "none")
    standardize = preprocess.keras_normalization(record) if kind == "standardize" else None
    step = preprocess.batch_transform(augment, True, kind, record.get("rescale", 1.0), standardize)
    return x, y, lambda batch: np.asarray(step(batch, None)[0])


def shows_images(shape) -> bool:
    """Are inputs of this shape (one example) drawn as images? Only H x W x C with 1, 3 or 4 channels: an (a, b)
    input without a channel axis may as well be a sequence of a steps of b features, so it is never drawn."""
    shape = tuple(shape)
    return len(shape) == 3 and shape[-1] in (1, 3, 4)


def _display(x: np.ndarray) -> np.ndarray:
    """Images (n, h, w, c), each min-max scaled to 0..1 on its own; RGBA -> RGB."""
    x = np.asarray(x, np.float32)[..., :3]
    low = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - low
    return np.where(span > 0, (x - low) / np.where(span > 0, span, 1), 0.5)


def first_conv(model: keras.Model) -> keras.layers.Layer | None:
    """The first Conv2D, DepthwiseConv2D, SeparableConv2D or Conv1D layer, nested models included."""
    kinds = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Conv1D)
    for layer in model.layers:
        if isinstance(layer, kinds):
            return layer
        if getattr(layer, "layers", None):
            found = first_conv(layer)
            if found is not None:
                return found
    return None


def filter_tiles(layer: keras.layers.Layer) -> np.ndarray:
    """One tile per output filter (n, h, w, 1 or 3), each min-max scaled to 0..1.

    Conv2D: 1 or 3 input channels as grey or RGB, more averaged. DepthwiseConv2D and
    SeparableConv2D: each depthwise kernel in grey. Conv1D: each filter as a grey
    (input channels x kernel size) map.
    """
    if isinstance(layer, keras.layers.SeparableConv2D):
        kernel = keras.ops.convert_to_numpy(layer.depthwise_kernel)
    else:
        kernel = keras.ops.convert_to_numpy(layer.kernel)
    kernel = kernel.astype(np.float32)
    if isinstance(layer, keras.layers.Conv1D):  # (k, in, out) -> (out, in, k, 1)
        tiles = np.transpose(kernel, (2, 1, 0))[..., None]
    elif isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):  # (kh, kw, in, m)
        kh, kw = kernel.shape[:2]
        tiles = np.transpose(kernel.reshape(kh, kw, -1), (2, 0, 1))[..., None]
    else:  # (kh, kw, in, out) -> (out, kh, kw, in)
        tiles = np.transpose(kernel, (3, 0, 1, 2))
        if tiles.shape[-1] not in (1, 3):
            tiles = tiles.mean(axis=-1, keepdims=True)
    return _display(tiles[:MAX_FILTERS])


def tile_grid(tiles: np.ndarray, captions: list[str] | None = None, *, min_side: int = 64,
              max_side: int = 160, pad: int = 2) -> np.ndarray:
    """Tiles (n, h, w, c) in 0..1 -> one uint8 RGB grid image, about square: tiles enlarged a whole number of
    times (nearest) to at least ``min_side`` pixels or shrunk to at most ``max_side``, an optional caption under
    each, ``pad`` white pixels between them."""
    from PIL import Image, ImageDraw

    n, h, w = tiles.shape[:3]
    side = max(h, w)
    scale = math.ceil(min_side / side) if side < min_side else min(max_side / side, 1.0)  # whole pixels up
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    caption_px = 14 if captions else 0
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = Image.new("RGB", (columns * (tw + pad) + pad, rows * (th + caption_px + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    caption_font = font(10)
    for k in range(n):
        pixels = np.rint(tiles[k] * 255).astype(np.uint8)
        tile = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
        tile = tile.resize((tw, th), Image.NEAREST if scale >= 1 else Image.BILINEAR)
        left = pad + (k % columns) * (tw + pad)
        top = pad + (k // columns) * (th + caption_px + pad)
        grid.paste(tile, (left, top))
        if captions:
            text = captions[k] if len(captions[k]) <= tw // 6 else captions[k][: max(1, tw // 6 - 1)] + "…"
            draw.text((left + tw / 2, top + th + 1), text, fill=(0, 0, 0), font=caption_font, anchor="ma")
    return np.asarray(grid, dtype=np.uint8)


def _text(value: Any) -> str:
    """A recipe value as canonical JSON, whatever YAML gave: keys as text and sorted (``repr`` when two keys
    would read the same, as ``1`` and ``"1"`` do), dates, bytes and the like as ``str``."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            keys = [k if isinstance(k, str) else str(k) for k in v]
            if len(set(keys)) < len(keys):
                keys = [repr(k) for k in v]
            return {k: plain(x) for k, x in zip(keys, v.values(), strict=True)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), sort_keys=True, default=str)


def hparam_values(recipe: Recipe, run: RunDir, model: keras.Model, data: Datasets) -> dict[str, Any]:
    """The recipe's values as flat ``section.key`` hparams: the same names for every run, so that runs under
    one runs folder share one table in the HParams dashboard. Values are numbers, booleans or strings, for any
    value the recipe's schema accepts (mappings and arguments as canonical JSON)."""
    train, d = recipe.train, recipe.data
    optimizer, args = split_spec(train.optimizer)
    rate = args.get("learning_rate")
    schedule = "none"
    if isinstance(rate, dict):  # {CosineDecay: {initial_learning_rate: ...}}
        schedule, schedule_args = split_spec(rate)
        rate = schedule_args.get("warmup_target") or schedule_args.get("initial_learning_rate")
    if not isinstance(rate, (int, float)):
        inner = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        rate = float(keras.ops.convert_to_numpy(inner.learning_rate))
    loss = train.loss if isinstance(train.loss, str) else _text(train.loss)
    model_json = _text(recipe.model.model_dump(mode="json"))
    return {
        "name": recipe.name,
        "run": f"{run.path.parent.name}/{run.path.name}",
        "seed": recipe.seed,
        "data.source": d.source,
        "data.batch_size": d.batch_size,
        "data.augment": ", ".join(data.augment) or "none",
        "data.normalize": data.normalization.get("normalize", "none"),
        "data.train_examples": int(data.sizes["train"]),
        "model.params": int(model.count_params()),
        "model.layers": len(model.layers),
        "model.digest": hashlib.sha256(model_json.encode()).hexdigest()[:10],  # tells architectures apart
        "train.epochs": train.epochs,
        "train.optimizer": optimizer,
        "train.optimizer_args": _text({k: v for k, v in args.items() if k != "learning_rate"}),
        "train.learning_rate": float(f"{float(rate):.7g}"),  # float32 -> the written value
        "train.lr_schedule": schedule,
        "train.loss": loss,
        "train.mixed_precision": str(train.mixed_precision),
        "train.jit_compile": str(train.jit_compile),
        "train.steps_per_execution": train.steps_per_execution,
        "train.class_weight": train.class_weight if isinstance(train.class_weight, str) else
        ("none" if train.class_weight is None else _text(train.class_weight)),
        "train.callbacks": ", ".join(split_spec(c)[0] for c in train.callbacks) or "none",
    }


def write_hparams(recipe: Recipe, run: RunDir, model: keras.Model, data: Datasets) -> list[str]:
    """This run's values (the session start) to the default summary writer; returns their names. The trial id
    is the run (name/time), so each run is its own row."""
    from tensorboard.plugins.hparams import api as hp

    values = hparam_values(recipe, run, model, data)
    hp.hparams(values, trial_id=values["run"], start_time_secs=time.time())
    return list(values)


def hparam_metrics(model: keras.Model, logs: dict) -> list[tuple[str, str]]:
    """(group, tag) of each metric the model logs, the loss included, as Keras's TensorBoard writes them: the
    model's compiled metric names (``loss``, ``accuracy``; ``<output>_loss``, ``<output>_accuracy``, ... for
    several outputs), in ``validation`` when an epoch's ``logs`` have ``val_<name>``, and in ``train``."""
    names = list(model.get_metrics_result())  # built by the first epoch's end
    return [(group, f"epoch_{name}") for group in ("validation", "train") for name in names
            if group == "train" or f"val_{name}" in logs]


def write_experiment(hparams: list[str], metrics: list[tuple[str, str]]) -> None:
    """The experiment: the hparam names and the run's metrics as (group, tag), to the default summary writer."""
    from tensorboard.plugins.hparams import api as hp

    hp.hparams_config(hparams=[hp.HParam(name) for name in hparams],
                      metrics=[hp.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')}")
                               for group, tag in metrics],
                      time_created_secs=0)  # identical in runs alike: TensorBoard shows one run's experiment
