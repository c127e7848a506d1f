"""RunDir -> exported artifacts that are checked against the Keras model before they count.

Every format is written to a temporary name next to its target, loaded back by
its own runtime, compared with the Keras model on held-out data (a full batch
and a batch of one), and only then renamed to its final name. A mismatch beyond
tolerance fails the export (exit 1) and leaves nothing under the final name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnctl.data import Datasets
from cnnctl.errors import CnnctlError, UserError
from cnnctl.evaluate import run_datasets
from cnnctl.model.saved import load_keras_model
from cnnctl.recipe import load_recipe
from cnnctl.recipe.schema import EXPORT_FORMATS as FORMATS
from cnnctl.rundir import RunDir

SIGNATURE = "serving_default"
ATOL, RTOL = 1e-5, 1e-4
_CHECK_BATCH = 64


def export_run(fmt: str, run: RunDir, out: str | None = None, force: bool = False) -> dict:
    """Export the run's model.keras as ``fmt``; return what was written and how it checked."""
    export_target(fmt, run, out, force)  # fail fast, before loading anything
    with run.locked():
        recipe = load_recipe(str(run / "recipe.yaml"))
        model = load_keras_model(run / "model.keras")
        return write_export(fmt, run, model, run_datasets(run, recipe), out=out, force=force)


def write_export(fmt: str, run: RunDir, model, data: Datasets, *, out: str | None = None,
                 force: bool = False) -> dict:
    """Write, verify and record one export of ``model`` (the caller holds the run's lock)."""
    target = export_target(fmt, run, out, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.export(str(tmp), format="tf_saved_model", verbose=False)
        check = verify_savedmodel(tmp, model, _check_inputs(data))
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record = {"path": str(target), "signature": SIGNATURE, **check}
    exports = run.read_json("metrics.json").get("exports", {}) if (run / "metrics.json").exists() else {}
    exports[fmt] = record
    run.update_json("metrics.json", exports=exports)
    return record


def export_target(fmt: str, run: RunDir, out: str | None, force: bool) -> Path:
    """Where ``fmt`` goes; refuses an existing path unless ``force``."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    target = Path(out) if out else run / "export" / fmt
    if target.exists() and not force:
        raise UserError(f"{target} exists; use --force to replace it, or --out for another path")
    return target


def verify_savedmodel(path: Path, model, x: np.ndarray) -> dict:
    """Reload with ``tf.saved_model.load``; compare its signature with the Keras model."""
    loaded = tf.saved_model.load(str(path))
    if SIGNATURE not in loaded.signatures:
        raise CnnctlError(f"the SavedModel at {path} has no '{SIGNATURE}' signature")
    serve = loaded.signatures[SIGNATURE]
    (input_name,) = serve.structured_input_signature[1].keys()

    def run_signature(batch: np.ndarray) -> list[np.ndarray]:
        outputs = serve(**{input_name: tf.constant(batch)})
        return [outputs[name].numpy() for name in sorted(outputs, key=_output_index)]

    expected = [np.asarray(y) for y in keras.tree.flatten(model(x, training=False))]
    batch_diff = single_diff = 0.0
    for got_batch, got_one, want in zip(run_signature(x), run_signature(x[:1]), expected, strict=True):
        batch_diff = max(batch_diff, _max_diff(got_batch, want, "a batch", path))
        single_diff = max(single_diff, _max_diff(got_one, want[:1], "a batch of one", path))
    return {"input": input_name, "checked_examples": len(x),
            "max_abs_diff": batch_diff, "max_abs_diff_batch_of_one": single_diff}


def _output_index(name: str) -> int:
    """``output_10`` sorts after ``output_9``."""
    return int(name.rsplit("_", 1)[-1]) if name.rsplit("_", 1)[-1].isdigit() else 0


def _max_diff(got: np.ndarray, expected: np.ndarray, what: str, path: Path) -> float:
    if got.shape != expected.shape:
        raise CnnctlError(f"the export at {path} gives shape {got.shape} on {what}, the Keras model {expected.shape}")
    diff = float(np.max(np.abs(got - expected)))
    if not np.allclose(got, expected, atol=ATOL, rtol=RTOL):
        raise CnnctlError(
            f"the export at {path} disagrees with the Keras model on {what}: max |difference| {diff:.3g} "
            f"(tolerance {ATOL} + {RTOL} x |value|); nothing was written"
        )
    return diff


def _check_inputs(data: Datasets) -> np.ndarray:
    """Held-out examples to compare on: the test split, else validation, else train."""
    for split in ("test", "validation", "train"):
        if data.sizes[split]:
            return data.sample(split, _CHECK_BATCH)[0]
    raise UserError("the data set is empty: nothing to check the export on")
