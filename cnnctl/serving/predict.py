"""Image files, folders or .npy arrays -> the top classes of a run's model, as training saw its inputs.

Images are decoded by the same function the image_dir source uses (its channel
conversion, ``image_size`` and ``interpolation``), then go through the run's
serving model (``cnnctl.serving.model``): the preprocessing of training, then the
model in inference mode. Each example's answer does not depend on what else is
in its batch. A ``.npy`` file holds one example of the stored shape, or a stack
of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cnnctl.data.preprocess import pixels_to_stored
from cnnctl.data.sources.images import COLOR_MODES, decoder, describe_bad, undecodable
from cnnctl.errors import UserError, closest_path, first_line
from cnnctl.filekinds import IMAGE_EXTENSIONS
from cnnctl.run import Run, layout
from cnnctl.serving.model import RunModel, load_model
from cnnctl.serving.outputs import class_scores, output_names

_BATCH = 64


class Predictions:
    """The predictions of a model for a list of inputs, made batch by batch as they are iterated (memory holds one
    batch of images, not all of them); iterating again gives the ones made so far, then goes on.

    Each is ``{"input": name, "outputs": {output: {"top": [{"class", "index", "probability"}, ...]}}}`` (or
    ``{"values": [...]}`` for an output that does not classify).
    """

    def __init__(self, loaded: RunModel, files: list[Path], *, top_k: int, on_error: str):
        self.model = loaded.source
        self.outputs = output_names(loaded.model)
        self.class_names = list(loaded.class_names)
        self.top_k = min(top_k, len(self.class_names)) if self.class_names else top_k
        self.input_width = max((_label_width(f, loaded.stored_shape) for f in files), default=0)
        self._made: list[dict] = []
        self._making = _predictions(loaded, files, top_k=top_k, on_error=on_error)
        self._failed: Exception | None = None  # what stopped the making: raised again at every iteration

    def __iter__(self) -> Iterator[dict]:
        yield from list(self._made)
        if self._failed is not None:
            raise self._failed
        try:
            for item in self._making:
                self._made.append(item)
                yield item
        except Exception as exc:
            self._failed = exc
            raise

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``cnnctl predict --json`` prints (every prediction made)."""
        return {"model": self.model, "outputs": self.outputs, "predictions": list(self)}


def predict(target: str | os.PathLike | Run, inputs: list[str | os.PathLike], *, top_k: int = 3,
            runs_dir: str | os.PathLike = "runs", model_file: str = layout.MODEL, on_error: str = "fail",
            unsafe: bool = False) -> Predictions:
    """Predictions of ``target``'s model (a run, ``latest`` or a .keras file) for each image or .npy file in
    ``inputs`` (files and folders, in order), made as they are iterated.

    ``on_error``: ``fail`` stops at an image that cannot be decoded, naming every such file, or at a .npy file
    that is not an array of the model's input shape; ``skip`` leaves them out with a warning naming them (which
    costs one more decoding pass over the images). Files in a folder that are neither images cnnctl decodes nor
    .npy files are named on stderr as skipped. ``unsafe``: load a model
    that Keras safe mode refuses, trusting the file (``cnnctl.model.saved``).
    """
    loaded = load_model(target, runs_dir, model_file, unsafe=unsafe)
    return Predictions(loaded, collect_inputs([os.fspath(i) for i in inputs]), top_k=top_k, on_error=on_error)


def _predictions(loaded: RunModel, files: list[Path], *, top_k: int, on_error: str) -> Iterator[dict]:
    """One result per example, batch by batch."""
    names = output_names(loaded.model)
    logits = loaded.logits
    class_names = loaded.class_names
    for labels, x in example_batches(files, loaded, on_error=on_error):
        outputs = [np.asarray(y) for y in keras.tree.flatten(loaded.serving.predict_on_batch(x))]
        scores = [class_scores(values, flag) for values, flag in zip(outputs, logits, strict=True)]
        for i, label in enumerate(labels):
            per_output = {}
            for name, values, probs in zip(names, outputs, scores, strict=True):
                if probs is None:  # not a class vector: the values as they are
                    per_output[name] = {"values": np.asarray(values[i]).tolist()}
                    continue
                order = np.argsort(-probs[i], kind="stable")[:top_k]
                per_output[name] = {"top": [{"class": class_names[c] if c < len(class_names) else str(c),
                                             "index": int(c), "probability": float(probs[i][c])} for c in order]}
            yield {"input": label, "outputs": per_output}


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders as the images and .npy files inside them (sorted, recursively); the other files of a
    folder (hidden ones aside) are named on stderr as skipped."""
    out: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            found = [p for p in files if _kind(p) is not None]
            other = [p for p in files if _kind(p) is None]
            listed = ", ".join(map(str, other[:5])) + (" ..." if len(other) > 5 else "")
            kinds = f"images ({', '.join(IMAGE_EXTENSIONS)}) or .npy files"
            if not found:
                held = f" (it holds {len(other)} other file{'s' if len(other) > 1 else ''}: {listed})" if other else ""
                raise UserError(f"{given}: no {kinds} in this folder{held}; convert the images to one of those formats")
            if other:
                print(f"warning: {given}: skipped {len(other)} file{'s' if len(other) > 1 else ''} that "
                      f"{'are' if len(other) > 1 else 'is'} neither {kinds}: {listed}; convert the images among them "
                      "to one of those formats", file=sys.stderr)
            out += found
        elif path.is_file():
            if _kind(path) is None:
                raise UserError(f"{given}: cnnctl predicts on images ({', '.join(IMAGE_EXTENSIONS)}) and .npy "
                                "arrays; convert the file to one of them")
            out.append(path)
        else:
            raise UserError(f"{given}: no such file or folder{closest_path(given)}")
    return out


def example_batches(files: list[Path], loaded: RunModel, *,
                    on_error: str = "fail") -> Iterator[tuple[list[str], np.ndarray]]:
    """(names, float32 examples of the stored shape) in batches, in the order of ``files``.

    Image files are decoded in parallel as the image_dir source decodes them; a
    ``.npy`` file gives its example, or each of its stack (named ``file[i]``).
    """
    pending: list[Path] = []
    for f in [*files, None]:
        if f is not None and _kind(f) == "image":
            pending.append(f)
            continue
        if pending:  # the images met so far, before this array (or the end)
            yield from _image_batches(pending, loaded, on_error)
            pending = []
        if f is not None:
            try:
                array = _read_npy(f, loaded.stored_shape)
            except UserError as exc:
                if on_error != "skip":
                    raise
                print(f"warning: skipped (--on-error skip) {exc}", file=sys.stderr)
                continue
            names = [str(f)] if len(array) == 1 else [f"{f}[{i}]" for i in range(len(array))]
            for i in range(0, len(array), _BATCH):
                yield names[i:i + _BATCH], array[i:i + _BATCH]


def _read_npy(path: Path, shape: tuple) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: cannot read as a NumPy .npy array ({first_line(exc)})") from None
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive under any name
        raise UserError(f"{path} is an .npz archive, not one .npy array; save the examples with numpy.save")
    if tuple(array.shape) == shape:
        array = array[None]
    if tuple(array.shape[1:]) != shape or not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{path}: an array of shape {list(array.shape)} ({array.dtype}); the model takes numbers "
                        f"of shape {list(shape)}, or a stack [N, {', '.join(map(str, shape))}]")
    return array.astype("float32")


def _image_batches(paths: list[Path], loaded: RunModel, on_error: str) -> Iterator[tuple[list[str], np.ndarray]]:
    """Decoded as the image_dir source decodes, put on the stored value range when that is not 0-255."""
    stored = loaded.record.stored
    if not stored.is_image:
        raise UserError(f"{loaded.source} takes arrays of shape {list(stored.shape)}, not images; give .npy files")
    interpolation = loaded.recipe.data.interpolation if loaded.recipe is not None else "bilinear"
    decode = decoder(stored.shape[:2], COLOR_MODES[stored.shape[-1]], interpolation)
    listed = np.array([os.fspath(p) for p in paths], str)
    if on_error == "skip":
        bad = set(undecodable(listed, decode))
        if bad:
            print(f"warning: skipped {len(bad)} image file{'s' if len(bad) > 1 else ''} that cannot be decoded: "
                  f"{', '.join(sorted(bad)[:5])}{' ...' if len(bad) > 5 else ''}", file=sys.stderr)
            listed = np.array([p for p in listed if p not in bad], str)
        if not len(listed):
            return
    dataset = tf.data.Dataset.from_tensor_slices(listed).map(lambda p: decode(tf.io.read_file(p)),
                                                             num_parallel_calls=tf.data.AUTOTUNE)
    batches = iter(dataset.batch(_BATCH).prefetch(tf.data.AUTOTUNE))
    start = 0
    while True:
        try:
            x = next(batches).numpy()
        except StopIteration:
            return
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
            bad = undecodable(listed, decode)
            raise UserError((describe_bad(bad) if bad else "an image could not be read") +
                            "\nremove them, or give --on-error skip to leave them out") from None
        yield list(listed[start:start + len(x)]), pixels_to_stored(x.astype("float32"), loaded.record.stored)
        start += len(x)


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return "npy" if suffix == ".npy" else None


def format_predictions(predictions: Predictions) -> Iterator[str]:
    """What ``cnnctl predict`` prints, line by line as the predictions are made: a header, then a row per input (per
    output of a multi-output model) with its top classes and their probabilities. Columns are as wide as the longest
    input and class names, known before the first prediction, so the rows line up as they come."""
    several = len(predictions.outputs) > 1
    widths = [max(len("input"), predictions.input_width)]
    if several:
        widths.append(max(len("output"), *map(len, predictions.outputs)))
    class_width = max(len(f"top {predictions.top_k}"), *map(len, predictions.class_names or [""]))
    widths += [class_width, 5] * predictions.top_k
    headers = ["input", *(["output"] if several else [])]
    lead = len(headers)
    for i in range(predictions.top_k):
        headers += [f"top {i + 1}", "p"]
    yield _row(headers, widths, lead)
    for item in predictions:
        for name, out in item["outputs"].items():
            cells = [item["input"], *([name] if several else [])]
            if "top" in out:
                cells += [cell for t in out["top"] for cell in (t["class"], f"{t['probability']:.3f}")]
            else:  # an output that does not classify: its values
                cells.append(" ".join(f"{v:.4g}" for v in np.ravel(out["values"])))
            yield _row(cells, widths, lead)


def _row(cells: list[str], widths: list[int], lead: int) -> str:
    """Cells padded to their column's width: the ``lead`` name columns, then (class, probability) pairs whose
    probabilities align to the right; cells beyond the widths (an output's values) follow as they are."""
    padded = [c.rjust(w) if i >= lead and (i - lead) % 2 == 1 else c.ljust(w)
              for i, (c, w) in enumerate(zip(cells, widths, strict=False))]
    return "  ".join(padded + cells[len(widths):]).rstrip()


def _label_width(path: Path, shape: tuple) -> int:
    """The width of the names predict gives ``path``'s examples: the file, or ``file[i]`` for each of a stack."""
    if _kind(path) != "npy":
        return len(str(path))
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only
        count = 1 if tuple(array.shape) == tuple(shape) else len(array)
    except (ValueError, OSError, TypeError, AttributeError):
        return len(str(path))  # predict names the problem when it reads the file
    return len(f"{path}[{count - 1}]") if count > 1 else len(str(path))
