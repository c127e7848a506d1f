"""Image files, folders or .npy arrays -> the top classes of a run's model, as training saw its inputs.

Images are decoded by the same function the image_dir source uses (its channel
conversion, ``image_size`` and ``interpolation``), then go through the run's
serving model (``cnnctl.inference``): the preprocessing of training, then the
model in inference mode. Each example's answer does not depend on what else is
in its batch. A ``.npy`` file holds one example of the stored shape, or a stack
of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from cnnctl.data.files import CHANNELS, IMAGE_EXTENSIONS, decoder, describe_bad, undecodable
from cnnctl.data.sources import closest_path
from cnnctl.errors import UserError
from cnnctl.inference import RunModel, load_model_or_run

_BATCH = 64


def predict(target: str, inputs: list[str], *, top_k: int = 5, runs_dir: str = "runs",
            model_file: str = "model.keras") -> dict:
    """Predictions of ``target``'s model for each file in ``inputs`` (files and folders, in order)."""
    loaded = load_model_or_run(target, runs_dir, model_file)
    files = collect_inputs(inputs)
    x, names = load_examples(files, loaded)
    outputs = [np.concatenate(parts) for parts in zip(*(_run(loaded, x[i:i + _BATCH])
                                                        for i in range(0, len(x), _BATCH)), strict=True)]
    logits = _from_logits(loaded)
    output_names = list(loaded.model.output_names) if len(outputs) > 1 else [loaded.model.name]
    class_names = loaded.class_names
    results = []
    for i, name in enumerate(names):
        per_output = {}
        for out_name, values in zip(output_names, outputs, strict=True):
            scores = values[i]
            if scores.ndim != 1:
                per_output[out_name] = {"values": scores.tolist()}
                continue
            probs = _softmax(scores) if logits else scores
            order = np.argsort(-probs, kind="stable")[:top_k]
            per_output[out_name] = {"top": [{"class": class_names[c] if c < len(class_names) else str(c),
                                             "index": int(c), "probability": float(probs[c])} for c in order]}
        results.append({"input": name, "outputs": per_output})
    return {"model": loaded.source, "outputs": output_names, "predictions": results}


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders as the images and .npy files inside them (sorted, recursively)."""
    out: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
            if not found:
                raise UserError(f"{given}: no images ({', '.join(IMAGE_EXTENSIONS)}) or .npy files in this folder")
            out += found
        elif path.is_file():
            if _kind(path) is None:
                raise UserError(f"{given}: cnnctl predicts on images ({', '.join(IMAGE_EXTENSIONS)}) and .npy "
                                "arrays; convert the file to one of them")
            out.append(path)
        else:
            raise UserError(f"{given}: no such file or folder{closest_path(given)}")
    return out


def load_examples(files: list[Path], loaded: RunModel) -> tuple[np.ndarray, list[str]]:
    """float32 examples of the stored shape, and one name per example (``file`` or ``file[i]``)."""
    shape = loaded.stored_shape
    images = [f for f in files if _kind(f) == "image"]
    decoded = iter(_decode_images(images, loaded) if images else [])
    xs, names = [], []
    for f in files:
        if _kind(f) == "image":
            xs.append(next(decoded)[None])
            names.append(str(f))
            continue
        try:
            array = np.load(f, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{f}: cannot read as a NumPy .npy array ({exc})") from None
        if tuple(array.shape) == shape:
            array = array[None]
        if tuple(array.shape[1:]) != shape or not np.issubdtype(array.dtype, np.number):
            raise UserError(f"{f}: an array of shape {list(array.shape)} ({array.dtype}); the model takes numbers "
                            f"of shape {list(shape)}, or a stack [N, {', '.join(map(str, shape))}]")
        xs.append(array.astype("float32"))
        names += [str(f)] if len(array) == 1 else [f"{f}[{i}]" for i in range(len(array))]
    return np.concatenate(xs).astype("float32"), names


def _decode_images(paths: list[Path], loaded: RunModel) -> np.ndarray:
    """Decoded as the image_dir source decodes, scaled to the stored value range when that is not 0-255."""
    shape = loaded.stored_shape
    if len(shape) != 3 or shape[-1] not in CHANNELS.values():
        raise UserError(f"{loaded.source} takes arrays of shape {list(shape)}, not images; give .npy files")
    spec = loaded.recipe.data if loaded.recipe is not None else None
    decode = decoder(SimpleNamespace(
        image_size=list(shape[:2]),
        color_mode={v: k for k, v in CHANNELS.items()}[shape[-1]],
        interpolation=getattr(spec, "interpolation", None) or "bilinear",
    ))
    listed = np.array([os.fspath(p) for p in paths], str)
    dataset = tf.data.Dataset.from_tensor_slices(listed).map(lambda p: decode(tf.io.read_file(p)),
                                                             num_parallel_calls=tf.data.AUTOTUNE)
    try:
        x = np.concatenate([b.numpy() for b in dataset.batch(_BATCH)]).astype("float32")
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        bad = undecodable(listed, decode)
        raise UserError(describe_bad(bad) if bad else "an image could not be read") from None
    low, high = loaded.record["stored"].get("value_range", (0.0, 255.0))
    if (low, high) != (0.0, 255.0):  # e.g. digits, stored as 0-1: an 8-bit image is put on that scale
        x = low + x * (high - low) / 255.0
    return x


def _run(loaded: RunModel, x: np.ndarray) -> list[np.ndarray]:
    import keras

    return [np.asarray(y) for y in keras.tree.flatten(loaded.serving(x, training=False))]


def _from_logits(loaded: RunModel) -> bool:
    """Whether the outputs are logits (the recipe's loss says ``from_logits: true``): shown as softmax."""
    if loaded.recipe is None:
        return False
    from cnnctl.recipe.graph import split_spec
    from cnnctl.recipe.train_spec import per_output

    recipe = loaded.recipe
    losses = recipe.train.loss
    specs = losses.values() if per_output(losses, recipe.graph.output_names) else [losses]
    return any(split_spec(s)[1].get("from_logits") is True for s in specs)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return "npy" if suffix == ".npy" else None


def format_predictions(result: dict) -> list[str]:
    """One line per input: the file, then the top classes with their probabilities."""
    lines = []
    several = len(result["outputs"]) > 1
    for item in result["predictions"]:
        for name, out in item["outputs"].items():
            label = f"{item['input']}" + (f" [{name}]" if several else "")
            if "top" in out:
                shown = "  ".join(f"{t['class']} {t['probability']:.3f}" for t in out["top"])
            else:
                shown = " ".join(f"{v:.4g}" for v in np.ravel(out["values"]))
            lines.append(f"{label}  {shown}")
    return lines
