"""A run's serving model -> an exported artifact, checked against the Keras model before it counts.

Every format holds the run's serving model (``cnnctl.serving.model.serving_model``):
one float32 input ``inputs`` taking examples as stored (pixels 0-255), the
run's preprocessing inside. Each export is written to a temporary name beside
its target by its format's writer (``cnnctl.exports.formats``), loaded back by the
format's own runtime (tf.saved_model, Keras in safe mode, the TFLite interpreter,
ONNX Runtime), compared with the Keras serving model on held-out examples
(``cnnctl.exports.check``), and only then renamed to its final name. A mismatch
beyond tolerance fails the export (exit 1) and leaves nothing under the final
name. The record of each export goes into metrics.json under ``exports``. See
docs/export.md.
"""

from __future__ import annotations

import os
import shutil
import time
import typing
from pathlib import Path

import keras
import tensorflow as tf

from cnnctl._tfimport import native_log
from cnnctl.data.pipeline import Datasets, build_datasets
from cnnctl.data.sources.images import bad_files_named
from cnnctl.errors import CnnctlError, UserError, did_you_mean, first_line
from cnnctl.exports.check import compare, held_out
from cnnctl.exports.serving_forms import float32_twin, inference_graph, mixed_policy, output_layers
from cnnctl.filekinds import names_folder
from cnnctl.recipe.export_spec import ExportSpec
from cnnctl.registry import FORMATS
from cnnctl.run import Run, atomic_write_text, layout
from cnnctl.serving.model import load_run_model, serving_model, warn_if_changed
from cnnctl.serving.outputs import logits_of


def export_spec(fmt: str | ExportSpec, quantize: str | None = None) -> ExportSpec:
    """A format name and ``--quantize`` (or a recipe's entry) as one ``ExportSpec``; UserError if wrong."""
    if isinstance(fmt, ExportSpec):
        if quantize not in (None, "none") and quantize != fmt.quantize:
            raise UserError(f"quantize={quantize!r} given for the export {fmt.label}")
        return fmt
    names = FORMATS.names()
    if fmt not in names:
        raise UserError(f"unknown export format '{fmt}'{did_you_mean(fmt, names)}; choose one of {', '.join(names)}")
    if quantize in (None, "none"):
        return ExportSpec.model_validate(fmt)
    schema = FORMATS.get(fmt).options
    if schema is None or "quantize" not in schema.model_fields:
        raise UserError(f"only tflite exports are quantized, not {fmt}")
    choices = typing.get_args(schema.model_fields["quantize"].annotation)
    if quantize not in choices:
        raise UserError(f"quantize is one of {', '.join(c for c in choices if c != 'none')}, got {quantize!r}")
    return ExportSpec.model_validate({fmt: {"quantize": quantize}})


def export_run(fmt: str | ExportSpec, run: Run, out: str | None = None, force: bool = False, *,
               quantize: str | None = None, unsafe: bool = False) -> dict:
    """Export the run's model (model.keras behind its preprocessing) as ``fmt``; return the export's record.

    ``quantize`` (tflite only): ``dynamic``, ``float16`` or ``int8``. ``unsafe``: load a
    model.keras that Keras safe mode refuses, trusting it (``cnnctl.model.saved``); a
    ``keras`` export of it is then reloaded for the check with safe mode off too. Raises
    ``UserError`` for a wrong format, option or target, ``CnnctlError`` when the
    export does not match the Keras model.
    """
    spec = export_spec(fmt, quantize)
    FORMATS.get(spec.format).require()
    export_target(spec, run, out, force)  # fail fast, before loading anything
    with run.locked(), native_log(run / layout.NATIVE_LOG):
        loaded = load_run_model(run, unsafe=unsafe)
        data = build_datasets(loaded.recipe.data, loaded.recipe.seed, normalization=loaded.record.normalization)
        split, _ = held_out(data)
        warn_if_changed(loaded.record, split, data.sizes[split])
        with bad_files_named(data.verify, "remove or replace them, or set data.on_error: skip in the run's "
                             "recipe.yaml; the export is checked on the run's held-out images"):
            return _export(spec, run, loaded.serving, data, out=out, force=force, logits=loaded.logits,
                           unsafe=unsafe)


def write_export(fmt: str | ExportSpec, run: Run, model: keras.Model, data: Datasets, recipe) -> dict:
    """Export a trained ``model`` of ``run`` (behind ``data``'s preprocessing) to its default path, replacing an
    earlier one; the caller holds the run's lock. ``fmt`` is a format name or an entry of the recipe's ``export``.
    """
    spec = export_spec(fmt)
    FORMATS.get(spec.format).require()
    serving = serving_model(model, data.preprocessing)
    with native_log(run / layout.NATIVE_LOG):
        return _export(spec, run, serving, data, out=None, force=True, logits=logits_of(recipe, len(model.outputs)))


def default_path(spec: ExportSpec, run: Run) -> Path:
    """``RUN/export/savedmodel``, ``serving.keras``, ``model.tflite`` (``model_int8.tflite``...), ``model.onnx``."""
    return run / layout.EXPORT / FORMATS.get(spec.format).path_name(spec.options)


def export_target(fmt: str | ExportSpec, run: Run, out: str | None, force: bool, *,
                  quantize: str | None = None) -> Path:
    """Where the export goes; refuses an existing path unless ``force``, and never replaces a folder by a file."""
    spec = export_spec(fmt, quantize)
    form = FORMATS.get(spec.format)
    target = Path(out) if out else default_path(spec, run)
    if out and not form.folder and names_folder(out):  # out/ is a folder: the export goes in it, by its usual name
        target = target / form.path_name(spec.options)
    if form.suffix is not None and target.suffix != form.suffix:
        raise UserError(f"{target}: a {form.title or form.name} export is a {form.suffix} file; give --out a name "
                        f"ending in {form.suffix}")
    if not (target.exists() or target.is_symlink()):
        return target
    if not force:
        raise UserError(f"{target} exists; use --force to replace it, or --out for another path")
    if target.is_dir() != form.folder or not form.recognizes(target) or _is_run_file(target, run):
        what = "a folder" if target.is_dir() else "a file"
        kind = f"a {form.title or form.name} folder" if form.folder else f"a {spec.format} file"
        raise UserError(f"{target} is {what} that is not {kind} cnnctl exported; --force replaces only an earlier "
                        "export: give --out another path")
    return target


def _is_run_file(path: Path, run: Run) -> bool:
    """The run's own files (model.keras, best.keras, recipe.yaml, ...) are never export targets."""
    return path.resolve().parent == run.path.resolve() and path.name in layout.FILES


def _export(spec: ExportSpec, run: Run, serving: keras.Model, data: Datasets, *, out: str | None,
            force: bool, logits: list[bool | None], unsafe: bool = False) -> dict:
    form = FORMATS.get(spec.format)
    reason = form.refuses(serving) if form.refuses is not None else None
    if reason is not None:
        raise UserError(f"{run.path}: {reason}")
    target = export_target(spec, run, out, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from None
    tmp = layout.temporary_path(target, keep_suffix=True)  # Keras saves only to names ending .keras
    what = f"the {spec.label} export for {target}"
    started = time.perf_counter()
    serving = inference_graph(serving)
    mixed = mixed_policy(serving)
    exported = float32_twin(serving, safe_mode=not unsafe) if mixed and form.float32_only else serving
    try:
        try:
            written = form.write(exported, tmp, spec.options, data)
            if exported is not serving:
                written["computed_in"] = f"float32 (the {mixed} model's float32 twin)"
            artifact = form.load(tmp, unsafe=unsafe)
        except (CnnctlError, UserError):
            raise
        except (OSError, tf.errors.PermissionDeniedError) as exc:
            raise UserError(f"cannot write {what}: {getattr(exc, 'strerror', None) or first_line(exc)}; "
                            "give --out a folder you can write to") from None
        except Exception as exc:  # a converter or runtime that cannot take this model
            raise CnnctlError(f"{spec.label} cannot take this model: {first_line(exc)}") from None
        check = compare(artifact, serving, data, form.tolerance(spec.options, mixed), what, logits=logits)
        _warn_if_weak(check, spec)
        labels = write_labels(data.class_names, tmp if tmp.is_dir() else target, artifact_folder=tmp.is_dir())
        _replace(tmp, target)
    finally:
        _remove(tmp)
    labels = target / labels.name if target.is_dir() else labels
    record = {"format": spec.format, "quantize": spec.quantize, "path": str(target.resolve()),
              "input": artifact.input, "input_shape": [None, *serving.inputs[0].shape[1:]], "input_dtype": "float32",
              "outputs": artifact.outputs, "model_outputs": output_layers(serving.layers[-1]),
              "labels": str(labels.resolve()),
              "signature": None, **artifact.details, **written,
              "runtime": artifact.runtime, **check, "bytes": _size(target),
              "seconds": round(time.perf_counter() - started, 2)}
    exports = run.metrics().get("exports", {})
    exports[spec.label] = record
    run.update_json(layout.METRICS, exports=exports)
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
    return atomic_write_text(labels_path(artifact, folder=artifact_folder), "".join(f"{n}\n" for n in class_names))


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
