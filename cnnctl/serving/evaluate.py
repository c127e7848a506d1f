"""A run's model (or a .keras file) -> metrics, per-class precision/recall/F1 and confusion matrices.

The data is the run's own split, another recipe's data (``--data recipe.yaml``)
or a folder of class sub-folders (``--data DIR``), read as stored and passed
through the run's preprocessing (``cnnctl.data.preprocess``), so every source is
measured the way the run's test split was. Classes are matched by name, so a
folder holding only some of the classes is fine. A model with several outputs
(an early-exit network's exits) also gets, per output, its accuracy and the
multiply-adds it takes (``cnnctl.model.report.exit_costs``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cnnctl.data.preprocess import pixels_to_stored
from cnnctl.data.sources.images import bad_files_named
from cnnctl.errors import UserError
from cnnctl.model.compile import compile_model
from cnnctl.run import Run, layout
from cnnctl.serving.eval_data import eval_data
from cnnctl.serving.model import RunModel, load_model
from cnnctl.serving.outputs import class_scores, output_names

_MAX_PRINTED_CLASSES = 20


@dataclass
class EvalResult:
    """What ``cnnctl eval`` measured. ``metrics``: the loss and the recipe's metrics; ``outputs``: per output that
    classifies, its classes, summary (accuracy, macro and weighted averages), per-class scores and confusion matrix;
    ``exits``: per output of a model with several, its accuracy and multiply-adds."""

    model: str
    data: str
    split: str
    examples: int
    metrics: dict[str, float]
    outputs: list[dict] = field(default_factory=list)
    exits: list[dict] | None = None
    full_model: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``cnnctl eval --json`` prints and ``RUN/eval/NAME/report.json`` holds."""
        out: dict[str, Any] = {"model": self.model, "data": self.data, "split": self.split,
                               "examples": self.examples, "metrics": self.metrics}
        if self.exits is not None:
            out.update(exits=self.exits, full_model=self.full_model)
        out["outputs"] = self.outputs
        return out


def evaluate(target: str | os.PathLike | Run, split: str = "test", data: str | None = None, *,
             runs_dir: str | os.PathLike = "runs", model_file: str = layout.MODEL, write: bool = True,
             unsafe: bool = False) -> EvalResult:
    """Evaluate ``target`` (a run, ``latest`` or a .keras file) on ``split`` of its data, or on ``data`` (a recipe
    file whose data to use, or a folder of class folders).

    One pass over the examples gives the predictions; the loss and the recipe's
    metrics are computed from them with the model's compiled loss and metrics.
    Writes ``RUN/eval/<name>/confusion_matrix*.png`` and ``report.json`` and a
    TensorBoard image under ``RUN/logs/eval`` when ``target`` belongs to a run (and ``write``). ``unsafe``: load a
    model that Keras safe mode refuses, trusting the file (``cnnctl.model.saved``).
    """
    loaded = load_model(target, runs_dir, model_file, unsafe=unsafe)
    chosen = eval_data(loaded, split, data)
    if chosen.examples == 0:
        raise UserError(f"{chosen.description} is empty: nothing to evaluate")
    model = loaded.model
    preprocessing = loaded.preprocessing()  # None: the model takes examples as stored
    stored = loaded.record.stored

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        if chosen.scale_pixels:
            x = pixels_to_stored(x, stored)
        return preprocessing.transform(training=False)(x, y) if preprocessing is not None else (x, y)

    batches = chosen.batches.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    with bad_files_named(chosen.verify, chosen.advice):  # an image cut short past its header fails only here
        y_true, predicted = _predict_all(model, batches)
    outputs = []
    for out_name, values, logits in zip(output_names(model), predicted, loaded.logits, strict=True):
        scores = class_scores(values, logits)
        if scores is not None:
            outputs.append(_classification(out_name, scores, y_true, loaded.class_names))
    result = EvalResult(loaded.source, chosen.description, split, chosen.examples,
                        _metrics(loaded, y_true, predicted), outputs)
    if len(predicted) > 1:
        result.exits, result.full_model = _exits(model, outputs)
    if write and loaded.run is not None:
        stem = Path(loaded.source).stem
        _write(loaded.run, chosen.name if stem == "model" else f"{chosen.name}-{stem}", result, loaded)
    return result


def _exits(model: keras.Model, outputs: list[dict]) -> tuple[list[dict], dict]:
    """Per output of a model with several, as an exit: its accuracy and the compute it takes (``exit_costs``)."""
    from cnnctl.model.report import exit_costs

    costs = exit_costs(model)
    accuracy = {o["output"]: o["summary"]["accuracy"] for o in outputs}
    exits = [{"output": name, "accuracy": accuracy.get(name), **cost}
             for name, cost in zip(output_names(model), costs["exits"], strict=True)]
    return exits, costs["full"]


def _predict_all(model: keras.Model, batches: tf.data.Dataset) -> tuple[np.ndarray, list[np.ndarray]]:
    """The labels and every output's predictions, in one pass over the batches."""
    labels, outputs = [], []
    for x, y in batches:
        labels.append(y.numpy())
        outputs.append([np.asarray(o) for o in keras.tree.flatten(model.predict_on_batch(x))])
    return np.concatenate(labels), [np.concatenate(parts) for parts in zip(*outputs, strict=True)]


def measure(model: keras.Model, batches: tf.data.Dataset) -> dict[str, float]:
    """The compiled ``model``'s loss and metrics on ``batches`` of (examples, class index): the one computation of
    test metrics, for ``cnnctl eval`` and for the test split at the end of training.

    Every example is predicted first; the loss and metrics are then computed on the
    whole split at once, so each output's loss is the exact mean over the examples
    (``model.evaluate`` averages its batches' means) and the total is their weighted sum.
    """
    y_true, predicted = _predict_all(model, batches)
    return _loss_and_metrics(model, y_true, predicted)


def _metrics(loaded: RunModel, y_true: np.ndarray, predicted: list[np.ndarray]) -> dict[str, float]:
    """The loss and metrics of ``loaded`` compiled as its recipe says (or as the usual classifier without one)."""
    model = loaded.model
    count = len(predicted)
    if loaded.recipe is not None and loaded.model is not loaded.serving:
        compile_model(model, loaded.recipe)
    else:  # no recipe, or a serving export (whose outputs are not named as the recipe's): the usual classifier's
        losses = [keras.losses.BinaryCrossentropy() if p.shape[-1] == 1 else keras.losses.SparseCategoricalCrossentropy(
            from_logits=bool(logits)) for p, logits in zip(predicted, loaded.logits, strict=True)]
        model.compile(loss=losses if count > 1 else losses[0],
                      metrics=[["accuracy"]] * count if count > 1 else ["accuracy"])
    return _loss_and_metrics(model, y_true, predicted)


def _loss_and_metrics(model: keras.Model, y_true: np.ndarray, predicted: list[np.ndarray]) -> dict[str, float]:
    """The compiled loss (regularization included, as Keras adds it) and metrics, from every prediction at once."""
    count = len(predicted)
    y = tuple([y_true] * count) if count > 1 else y_true
    y_pred = predicted if count > 1 else predicted[0]
    model.reset_metrics()
    loss = model.compute_loss(x=None, y=y, y_pred=y_pred, training=False)
    results = {k: float(v) for k, v in model.compute_metrics(None, y, y_pred, sample_weight=None).items()}
    results["loss"] = float(loss)
    return dict(sorted(results.items(), key=lambda kv: kv[0] != "loss"))


def _classification(output: str, probs: np.ndarray, y_true: np.ndarray, names: list[str]) -> dict:
    from cnnctl.serving.confusion import confusion_matrix, per_class, summary

    count = probs.shape[-1]
    labels = list(names) if len(names) == count else [str(i) for i in range(count)]
    cm = confusion_matrix(y_true, probs.argmax(-1), count)
    return {"output": output, "classes": labels, "summary": summary(cm), "per_class": per_class(cm, labels),
            "confusion_matrix": cm.tolist()}


def _write(run: Run, name: str, result: EvalResult, loaded: RunModel) -> None:
    """eval/<name>/report.json and confusion_matrix[_<output>].png; the same image in TensorBoard (logs/eval)."""
    from cnnctl.pictures import write_png
    from cnnctl.serving.confusion import render_confusion

    folder = run / layout.EVAL / name
    folder.mkdir(parents=True, exist_ok=True)
    several = len(result.outputs) > 1
    images = {}
    for output in result.outputs:
        title = f"{Path(loaded.source).name}, {name}" + (f", output {output['output']}" if several else "")
        image = render_confusion(np.array(output["confusion_matrix"]), output["classes"], title=title)
        png = folder / (f"confusion_matrix_{output['output']}.png" if several else "confusion_matrix.png")
        write_png(image, png)
        output["png"] = str(png)
        images[f"eval/{name}/confusion_matrix" + (f"/{output['output']}" if several else "")] = image
    run.write_json(f"{layout.EVAL}/{name}/report.json", result.to_dict())
    writer = tf.summary.create_file_writer(str(run / layout.LOGS / "eval"))
    with writer.as_default():
        for tag, image in images.items():
            tf.summary.image(tag, image[None], step=run.metrics().get("epochs", 0))
    writer.close()


def format_eval(result: EvalResult | dict) -> list[str]:
    """What ``cnnctl eval`` prints: the metrics, then per output the per-class table and the confusion matrix."""
    from cnnctl.tables import format_table

    result = result.to_dict() if isinstance(result, EvalResult) else result
    lines = [f"{result['model']} on {result['data']}: {result['examples']:,} examples",
             format_table(["metric", "value"], list(result["metrics"].items()), "lr")]
    if "exits" in result:
        lines += ["", *_format_exits(result)]
    for output in result["outputs"]:
        lines.append("")
        if len(result["outputs"]) > 1:
            lines.append(f"output {output['output']}:")
        predicted = np.asarray(output["confusion_matrix"]).sum(axis=0)
        rows = [[c["name"], c["precision"], c["recall"], c["f1"], c["support"]] if c["support"] or predicted[i] else
                [c["name"], "-", "-", "-", 0] for i, c in enumerate(output["per_class"])]  # absent: not averaged
        s = output["summary"]
        rows += [[f"{average} avg", *(s[f"{average}_{m}"] for m in ("precision", "recall", "f1")), s["examples"]]
                 for average in ("macro", "weighted")]
        lines.append(format_table(["class", "precision", "recall", "f1", "support"], rows, "lrrrr"))
        lines.append(f"accuracy: {s['accuracy']:.4f}")
        cm, classes = output["confusion_matrix"], output["classes"]
        if len(classes) <= _MAX_PRINTED_CLASSES:
            lines.append("confusion matrix (rows: true class, columns: predicted):")
            lines.append(format_table(["", *classes], [[c, *row] for c, row in zip(classes, cm, strict=True)],
                                      "l" + "r" * len(classes)))
        if "png" in output:
            lines.append(f"confusion matrix: {output['png']}")
    return lines


def _format_exits(result: dict) -> list[str]:
    """Each output as an exit: accuracy, MACs alone and with the earlier exits, and their shares of the model's."""
    from cnnctl.tables import format_table

    def cost(macs: int, share: float | None) -> str:
        return f"{macs:,}" + ("" if share is None else f" ({100 * share:.1f} %)")

    rows = [[e["output"], "-" if e["accuracy"] is None else e["accuracy"], cost(e["macs"], e["share"]),
             cost(e["macs_with_earlier"], e["share_with_earlier"])] for e in result["exits"]]
    full = result["full_model"]
    lines = [format_table(["exit", "accuracy", "MACs (% of full)", "with earlier exits"], rows, "lrrr"),
             "MACs per example, as cnnctl check counts them (FLOPs = 2 x MACs): an exit alone counts the layers",
             "from the input to it; with earlier exits adds the heads of the exits before it, which early exiting",
             f"runs before it stops there. Full model: {full['macs']:,} MACs, {full['flops']:,} FLOPs."]
    if full["uncounted_layers"]:
        lines.append(f"not counted (weighted layers of unknown cost): {', '.join(full['uncounted_layers'])}")
    return lines
