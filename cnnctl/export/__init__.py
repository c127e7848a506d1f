"""RunDir -> exported artifacts that are checked against the Keras model before they count.

Every format holds the run's serving model (``cnnctl.inference.serving_model``):
one float32 input ``inputs`` taking examples as stored (pixels 0-255), the
run's preprocessing inside. Each export is written to a temporary name beside
its target, loaded back by its own runtime (tf.saved_model, Keras in safe mode,
the TFLite interpreter, ONNX Runtime), compared with the Keras serving model on
held-out examples (``cnnctl.export.check``), and only then renamed to its final
name. A mismatch beyond tolerance fails the export (exit 1) and leaves nothing
under the final name. The record of each export goes into metrics.json under
``exports``. See docs/export.md.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from cnnctl.data import Datasets
from cnnctl.data.files import bad_files_named
from cnnctl.errors import CnnctlError, UserError, first_line
from cnnctl.export.check import Tolerance, compare, held_out, representative
from cnnctl.recipe.export_spec import ExportSpec, export_spec
from cnnctl.rundir import RECIPE, RunDir

__all__ = ["DEFAULT_PATHS", "TOLERANCES", "default_path", "export_run", "export_target", "require_runtime",
           "write_export"]

DEFAULT_PATHS = {"savedmodel": "savedmodel", "keras": "serving.keras", "tflite": "model.tflite",
                 "onnx": "model.onnx"}  # under RUN/export/; a quantized tflite is model_<quantize>.tflite

# Float formats match elementwise; quantized ones by the class they predict. Measured figures: docs/export.md.
TOLERANCES = {
    "float": Tolerance(atol=1e-5, rtol=1e-4),  # float32 throughout: measured <= 1.1e-6
    "mixed_float16": Tolerance(atol=5e-3, rtol=1e-2),  # a float16 Keras model: measured <= 1.3e-3
    "mixed_bfloat16": Tolerance(atol=4e-2, rtol=5e-2),  # bfloat16 keeps 8 bits of mantissa: measured <= 1.1e-2
    "dynamic": Tolerance(agreement=0.97, accuracy_drop=0.02),
    "float16": Tolerance(agreement=0.99, accuracy_drop=0.01),
    "int8": Tolerance(agreement=0.95, accuracy_drop=0.03),
}


def export_run(fmt: str, run: RunDir, out: str | None = None, force: bool = False, *,
               quantize: str | None = None, unsafe: bool = False) -> dict:
    """Export the run's model (model.keras behind its preprocessing) as ``fmt``; return the export's record.

    ``quantize`` (tflite only): ``dynamic``, ``float16`` or ``int8``. ``unsafe``: load a
    model.keras that Keras safe mode refuses, trusting it (``cnnctl.model.saved``); a
    ``keras`` export of it is then reloaded for the check with safe mode off too. Raises
    ``UserError`` for a wrong format, option or target, ``CnnctlError`` when the
    export does not match the Keras model.
    """
    from cnnctl.inference import load_run_model, outputs_are_logits, run_datasets, warn_if_changed

    spec = _spec(fmt, quantize)
    require_runtime(spec)
    export_target(spec, run, out, force)  # fail fast, before loading anything
    with run.locked():
        loaded = load_run_model(run, unsafe=unsafe)
        data = run_datasets(run, loaded.recipe)
        split, _ = held_out(data)
        warn_if_changed(loaded.record, split, data.sizes[split])
        with bad_files_named(data.verify, "remove or replace them, or set data.on_error: skip in the run's "
                             "recipe.yaml; the export is checked on the run's held-out images"):
            return _export(spec, run, loaded.serving, data, out=out, force=force, logits=outputs_are_logits(loaded),
                           unsafe=unsafe)


def write_export(fmt: str | ExportSpec, run: RunDir, model: keras.Model, data: Datasets) -> dict:
    """Export a trained ``model`` of ``run`` (behind the run's preprocessing) to its default path, replacing an
    earlier one; the caller holds the run's lock. ``fmt`` is a format name or an entry of the recipe's ``export``.
    """
    from cnnctl.inference import logits_of, serving_model
    from cnnctl.recipe import load_recipe

    spec = _spec(fmt, None)
    require_runtime(spec)
    recipe = load_recipe(str(run / RECIPE))
    serving = serving_model(model, recipe, run.read_json("data.json"))
    return _export(spec, run, serving, data, out=None, force=True, logits=logits_of(recipe, len(model.outputs)))


def require_runtime(spec: str | ExportSpec) -> None:
    """UserError when the packages ``spec``'s format needs are missing (onnx: the optional extra)."""
    if (spec if isinstance(spec, str) else spec.format) == "onnx":
        from cnnctl.export.onnx_file import require_onnx

        require_onnx()


def default_path(spec: ExportSpec, run: RunDir) -> Path:
    """``RUN/export/savedmodel``, ``serving.keras``, ``model.tflite`` (``model_int8.tflite``...), ``model.onnx``."""
    name = DEFAULT_PATHS[spec.format]
    if spec.quantize:
        name = name.replace(".tflite", f"_{spec.quantize}.tflite")
    return run / "export" / name


def export_target(fmt: str | ExportSpec, run: RunDir, out: str | None, force: bool, *,
                  quantize: str | None = None) -> Path:
    """Where the export goes; refuses an existing path unless ``force``, and never replaces a folder by a file."""
    spec = _spec(fmt, quantize)
    target = Path(out) if out else default_path(spec, run)
    if spec.format == "keras" and target.suffix != ".keras":
        raise UserError(f"{target}: a Keras export is a .keras file; give --out a name ending in .keras")
    if not (target.exists() or target.is_symlink()):
        return target
    if not force:
        raise UserError(f"{target} exists; use --force to replace it, or --out for another path")
    folder = spec.format == "savedmodel"
    if target.is_dir() != folder or not _is_export(spec.format, target) or _is_run_file(target, run):
        what = "a folder" if target.is_dir() else "a file"
        kind = "a SavedModel folder" if folder else f"a {spec.format} file"
        raise UserError(f"{target} is {what} that is not {kind} cnnctl exported; --force replaces only an earlier "
                        "export: give --out another path")
    return target


def _is_export(fmt: str, path: Path) -> bool:
    """Does ``path`` hold what a ``fmt`` export writes (by its content, not its name)?"""
    if fmt == "savedmodel":
        return (path / "saved_model.pb").is_file()
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    if fmt == "tflite":
        return head[4:8] == b"TFL3"  # the flatbuffer's file identifier
    if fmt == "keras":
        import zipfile

        return zipfile.is_zipfile(path) and "config.json" in zipfile.ZipFile(path).namelist()
    try:  # onnx: a protobuf that parses as an ONNX model with a graph
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # not protobuf, or not ONNX
        return False


def _is_run_file(path: Path, run: RunDir) -> bool:
    """The run's own files (model.keras, best.keras, recipe.yaml, ...) are never export targets."""
    from cnnctl.callbacks import RUN_FILES

    return path.resolve().parent == run.path.resolve() and path.name in RUN_FILES


def _spec(fmt: str | ExportSpec, quantize: str | None) -> ExportSpec:
    from cnnctl.errors import did_you_mean
    from cnnctl.recipe.export_spec import FORMATS

    if isinstance(fmt, str) and fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'{did_you_mean(fmt, FORMATS)}; "
                        f"choose one of {', '.join(FORMATS)}")
    try:
        return export_spec(fmt, quantize)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _export(spec: ExportSpec, run: RunDir, serving: keras.Model, data: Datasets, *, out: str | None,
            force: bool, logits: list[bool | None], unsafe: bool = False) -> dict:
    target = export_target(spec, run, out, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from None
    suffix = ".keras" if spec.format == "keras" else target.suffix  # Keras saves only to names ending .keras
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}{suffix}")
    what = f"the {spec.label} export for {target}"
    started = time.perf_counter()
    serving = inference_graph(serving)
    mixed = _mixed_policy(serving)
    exported = float32_twin(serving, safe_mode=not unsafe) if mixed and spec.format in ("tflite", "onnx") else serving
    try:
        try:
            written = _write(spec, exported, tmp, data)
            if exported is not serving:
                written["computed_in"] = f"float32 (the {mixed} model's float32 twin)"
            artifact = _load(spec, tmp, unsafe=unsafe)
        except (CnnctlError, UserError):
            raise
        except (OSError, tf.errors.PermissionDeniedError) as exc:
            raise UserError(f"cannot write {what}: {getattr(exc, 'strerror', None) or first_line(exc)}; "
                            "give --out a folder you can write to") from None
        except Exception as exc:  # a converter or runtime that cannot take this model
            raise CnnctlError(f"{spec.label} cannot take this model: {first_line(exc)}") from None
        check = compare(artifact, serving, data, _tolerance(spec, mixed), what, logits=logits)
        _warn_if_weak(check, spec)
        labels = write_labels(data.class_names, tmp if tmp.is_dir() else target, artifact_folder=tmp.is_dir())
        _replace(tmp, target)
    finally:
        _remove(tmp)
    labels = target / labels.name if target.is_dir() else labels
    record = {"format": spec.format, "quantize": spec.quantize, "path": str(target.resolve()),
              "input": artifact.input, "input_shape": [None, *serving.inputs[0].shape[1:]], "input_dtype": "float32",
              "outputs": artifact.outputs, "model_outputs": _output_layers(serving.layers[-1]),
              "labels": str(labels.resolve()),
              "signature": None, **artifact.details, **written,
              "runtime": artifact.runtime, **check, "bytes": _size(target),
              "seconds": round(time.perf_counter() - started, 2)}
    exports = run.read_json("metrics.json").get("exports", {}) if (run / "metrics.json").exists() else {}
    exports[spec.label] = record
    run.update_json("metrics.json", exports=exports)
    return record


def _warn_if_weak(check: dict, spec: ExportSpec) -> None:
    """A check on few examples, or on the examples the model trained on, says less than it seems."""
    import sys

    if check["split"] == "train":
        calibrated = " (int8 also calibrated on its first examples)" if spec.quantize == "int8" else ""
        print(f"warning: the {spec.label} export was checked on training examples{calibrated}: the run has no "
              "validation or test split", file=sys.stderr)
    elif check["checked_examples"] < 100:
        print(f"warning: the {spec.label} export was checked on only {check['checked_examples']} "
              f"{check['split']} examples; one disagreement is {1 / check['checked_examples']:.0%} of them",
              file=sys.stderr)


def labels_path(artifact: Path, *, folder: bool) -> Path:
    """Where an export's class names go: ``savedmodel/labels.txt``, ``model.tflite`` -> ``model.labels.txt``."""
    return artifact / "labels.txt" if folder else artifact.with_suffix(".labels.txt")


def write_labels(class_names: list[str], artifact: Path, *, artifact_folder: bool) -> Path:
    """The class names, one per line, in the order of the outputs' class axis."""
    from cnnctl.rundir import atomic_write_text

    return atomic_write_text(labels_path(artifact, folder=artifact_folder), "".join(f"{n}\n" for n in class_names))


def inference_graph(serving: keras.Model) -> keras.Model:
    """The serving model's chain (input, preprocessing, trained model) called with ``training=False`` in its graph.

    Keras's exporters call a model without ``training``; an image preprocessing
    layer such as CenterCrop then takes its own default (True) and the layers after
    it run in training mode: Dropout drops, BatchNormalization uses batch statistics.
    Baked into the graph, inference mode holds for every runtime, and for whoever
    calls the exported .keras model without ``training=False``.
    """
    from cnnctl.inference import PREPROCESSING

    steps = serving.layers[1:]  # [preprocessing,] trained model: the chain serving_model builds
    if len(serving.inputs) != 1 or not 1 <= len(steps) <= 2 or (len(steps) == 2 and steps[0].name != PREPROCESSING):
        raise ValueError(f"{serving.name} is not the chain cnnctl.inference.serving_model builds")
    inputs = keras.Input(shape=tuple(serving.inputs[0].shape[1:]), dtype=serving.inputs[0].dtype,
                         name=serving.inputs[0].name)
    x = inputs
    for layer in steps:
        x = layer(x, training=False)
    return keras.Model(inputs, x, name=serving.name)


def float32_twin(model: keras.Model, *, safe_mode: bool = True) -> keras.Model:
    """A mixed-precision model rebuilt with float32 layers and the same weights (variables are float32 already).

    TFLite has no built-in float16 convolution and Keras's ONNX exporter wants
    float32 models: these formats carry the twin, which computes in float32 what
    the mixed model computes in float16 or bfloat16.
    """
    def float32(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and str(node["config"].get("name", "")).startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: float32(v) for k, v in node.items()}
        return [float32(v) for v in node] if isinstance(node, list) else node

    twin = keras.saving.deserialize_keras_object(float32(keras.saving.serialize_keras_object(model)),
                                                 safe_mode=safe_mode)
    twin.set_weights(model.get_weights())
    return twin


def _mixed_policy(model: keras.Model) -> str | None:
    """``mixed_float16`` or ``mixed_bfloat16`` if any layer (nested models too) computes in it."""
    def layers(m):
        for layer in m.layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from layers(layer)

    names = {layer.dtype_policy.name for layer in layers(model)}
    return next((p for p in ("mixed_bfloat16", "mixed_float16") if p in names), None)


def _write(spec: ExportSpec, serving: keras.Model, tmp: Path, data: Datasets) -> dict:
    """Write the artifact at ``tmp``; return what the record should say about how."""
    if spec.format == "savedmodel":
        from cnnctl.export.savedmodel import write_savedmodel

        write_savedmodel(serving, tmp)
        return {}
    if spec.format == "keras":
        from cnnctl.export.keras_file import write_keras

        write_keras(serving, tmp)
        return {}
    if spec.format == "tflite":
        from cnnctl.export.tflite import REPRESENTATIVE_EXAMPLES, write_tflite

        calibration = representative(data, REPRESENTATIVE_EXAMPLES) if spec.quantize == "int8" else None
        written = write_tflite(serving, tmp, spec.quantize, calibration)
        if calibration is not None:
            written["calibration_examples"] = len(calibration)
        return written
    from cnnctl.export.onnx_file import write_onnx

    return write_onnx(serving, tmp, representative(data, 1))


def _load(spec: ExportSpec, path: Path, *, unsafe: bool = False):
    if spec.format == "savedmodel":
        from cnnctl.export.savedmodel import load_savedmodel

        return load_savedmodel(path)
    if spec.format == "keras":
        from cnnctl.export.keras_file import load_keras

        return load_keras(path, unsafe=unsafe)
    if spec.format == "tflite":
        from cnnctl.export.tflite import load_tflite

        return load_tflite(path)
    from cnnctl.export.onnx_file import load_onnx

    return load_onnx(path)


def _output_layers(model: keras.Model) -> list[str]:
    """The layers the trained model's outputs come from, in order: what ``output_0``, ... are."""
    names = getattr(model, "output_names", None)  # a functional model's; a Sequential ends at its last layer
    return list(names) if names else [model.layers[-1].name]


def _tolerance(spec: ExportSpec, mixed: str | None) -> Tolerance:
    if spec.quantize:
        return TOLERANCES[spec.quantize]
    return TOLERANCES[mixed or "float"]


def _replace(tmp: Path, target: Path) -> None:
    """Move the checked artifact to its final name; an export it replaces is removed only after."""
    if not target.is_dir():
        os.replace(tmp, target)  # atomic, over a file or nothing
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
