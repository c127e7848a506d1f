"""An export against the Keras serving model, on held-out examples as stored.

Both take the same raw batches (pixels as decoded, float32). A float export must
match every output value within ``atol + rtol * |value|`` on full batches and on
batches of one. A quantized one cannot: it must predict the same class as Keras
on at least a share of the examples, and lose at most so much accuracy.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from cnnctl.data.pipeline import Datasets
from cnnctl.errors import CnnctlError, UserError
from cnnctl.exports.format import Artifact, Tolerance
from cnnctl.serving.outputs import predicted_classes

CHECK_EXAMPLES = 1000  # held-out examples compared, and on which both accuracies are measured (the first, in order)
CHECK_BATCH = 64
ALONE = 8  # of those, the first few also go through as batches of one


def held_out(data: Datasets) -> tuple[str, tf.data.Dataset]:
    """The split to check on (test, else validation, else train) as float32 batches of at most CHECK_EXAMPLES."""
    for split in ("test", "validation", "train"):
        if data.sizes[split]:
            batches = data.raw[split].unbatch().take(CHECK_EXAMPLES).batch(CHECK_BATCH)
            return split, batches.map(lambda x, y: (tf.cast(x, tf.float32), y))
    raise UserError("the data set is empty: nothing to check the export on")


def compare(artifact: Artifact, serving: keras.Model, data: Datasets, tolerance: Tolerance, what: str, *,
            logits: list[bool | None] | None = None) -> dict:
    """Run both on the held-out examples; raise ``CnnctlError`` beyond ``tolerance``; return the figures.

    ``what`` names the export in messages (e.g. "the tflite_int8 export for runs/x/export/model_int8.tflite");
    ``logits``: per output, whether it gives logits (the recipe's loss says ``from_logits``).
    """
    split, batches = held_out(data)
    diffs = np.zeros(len(artifact.outputs))  # per output: max |export - keras| over every example
    alone_diff, seen = 0.0, 0
    labels, keras_classes, export_classes = [], [], []
    for batch, y in batches:
        x = batch.numpy()
        want = [np.asarray(o, "float64") for o in keras.tree.flatten(serving(x, training=False))]
        got = _checked(artifact, x, want, tolerance, what=what, batch="a batch")
        diffs = np.maximum(diffs, [_max_diff(g, w) for g, w in zip(got, want, strict=True)])
        for j in range(min(ALONE - seen, len(x))):  # batch norm in inference mode: alone as in a batch
            one = [w[j:j + 1] for w in want]
            got_one = _checked(artifact, x[j:j + 1], one, tolerance, what=what, batch="a batch of one")
            alone_diff = max(alone_diff, *(_max_diff(g, w) for g, w in zip(got_one, one, strict=True)))
        seen += len(x)
        labels.append(y.numpy().reshape(-1))
        flags = logits or [None] * len(want)
        keras_classes.append([predicted_classes(w, f) for w, f in zip(want, flags, strict=True)])
        export_classes.append([predicted_classes(g, f) for g, f in zip(got, flags, strict=True)])
    y = np.concatenate(labels)
    per_output = []
    for i, name in enumerate(artifact.outputs):
        k = np.concatenate([batch[i] for batch in keras_classes])
        e = np.concatenate([batch[i] for batch in export_classes])
        per_output.append({"output": name, "agreement": float(np.mean(k == e)),
                           "accuracy": float(np.mean(e == y)), "keras_accuracy": float(np.mean(k == y)),
                           "max_abs_diff": float(diffs[i])})
    if not tolerance.elementwise:
        _check_classes(per_output, len(y), tolerance, what, split)
    record = {"split": split, "checked_examples": len(y),
              "max_abs_diff": float(diffs.max()), "max_abs_diff_batch_of_one": alone_diff,
              "agreement": min(o["agreement"] for o in per_output),
              "accuracy": per_output[-1]["accuracy"], "keras_accuracy": per_output[-1]["keras_accuracy"],
              "tolerance": tolerance.as_dict()}
    if len(per_output) > 1:
        record["per_output"] = per_output
    return record


def allowed(examples: int, share: float) -> int:
    """How many of ``examples`` may count against an export: ``share`` of them, and at least one."""
    return max(1, math.floor(share * examples + 1e-9))


def _check_classes(per_output: list[dict], examples: int, tolerance: Tolerance, what: str, split: str) -> None:
    for o in per_output:
        if round((1.0 - o["agreement"]) * examples) > allowed(examples, 1.0 - tolerance.agreement):
            raise CnnctlError(
                f"{what} predicts the class Keras predicts on {o['agreement']:.1%} of {examples} {split} examples "
                f"({o['output']}); at least {tolerance.agreement:.0%} is required; nothing was written")
        drop = o["keras_accuracy"] - o["accuracy"]
        if round(drop * examples) > allowed(examples, tolerance.accuracy_drop):
            raise CnnctlError(
                f"{what} has accuracy {o['accuracy']:.4f} on {examples} {split} examples ({o['output']}), "
                f"{drop:.4f} below the Keras model's {o['keras_accuracy']:.4f}; at most "
                f"{tolerance.accuracy_drop} is allowed; nothing was written")


def _checked(artifact: Artifact, x: np.ndarray, want: list[np.ndarray], tolerance: Tolerance, *, what: str,
             batch: str) -> list[np.ndarray]:
    """The export's outputs on ``x``: as many as Keras gives, of the same shapes, and within an elementwise
    tolerance."""
    got = [np.asarray(o, "float64") for o in artifact.predict(x)]
    if len(got) != len(want):
        raise CnnctlError(f"{what} gives {len(got)} outputs on {batch}, the Keras model {len(want)}")
    for name, g, w in zip(artifact.outputs, got, want, strict=True):
        if g.shape != w.shape:
            raise CnnctlError(f"{what} gives shape {g.shape} for {name} on {batch}, the Keras model {w.shape}")
        if tolerance.elementwise and not np.allclose(g, w, atol=tolerance.atol, rtol=tolerance.rtol):
            raise CnnctlError(
                f"{what} disagrees with the Keras model on {batch} ({name}): max |difference| "
                f"{_max_diff(g, w):.3g} (tolerance {tolerance.atol:g} + {tolerance.rtol:g} x |value|); "
                "nothing was written")
    return got


def _max_diff(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want))) if got.size else 0.0
