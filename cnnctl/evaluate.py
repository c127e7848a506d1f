"""A run's model (or a .keras file) -> metrics, per-class precision/recall/F1 and confusion matrices.

The data is the run's own split, another recipe's data (``--data recipe.yaml``)
or a folder of class sub-folders (``--data DIR``), read as stored and passed
through the run's preprocessing (``cnnctl.inference``), so every source is
measured the way the run's test split was. Classes are matched by name, so a
folder holding only some of the classes is fine. A model with several outputs
(an early-exit network's exits) also gets, per output, its accuracy and the
multiply-adds it takes (``cnnctl.model.report.exit_costs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from cnnctl.data import build_datasets
from cnnctl.data.files import COLOR_MODES, IMAGE_EXTENSIONS, SPLIT_FOLDERS, BadFiles, bad_files_named
from cnnctl.errors import RecipeError, UserError
from cnnctl.inference import (
    RunModel,
    class_scores,
    load_model_or_run,
    output_names,
    outputs_are_logits,
    preprocessing_layers,
    warn_if_changed,
)
from cnnctl.recipe import load_recipe, load_recipe_text
from cnnctl.recipe.load import dump_recipe
from cnnctl.rundir import RunDir
from cnnctl.train import compile_model

_MAX_PRINTED_CLASSES = 20
_RECIPE_ADVICE = "remove or replace them, or set data.on_error: skip in the recipe to leave them out"
_FOLDER_ADVICE = "remove or replace them: eval --data DIR reads every image in the folder"


@dataclass
class EvalData:
    """Raw batches (x as stored, y as the model's class indices), their size and what they are."""

    batches: tf.data.Dataset
    examples: int
    description: str
    name: str  # the folder of eval/ the results go to
    scale_pixels: bool = False  # 8-bit pixels for a model whose data was stored on another scale (digits: 0-1)
    verify: Callable[[], list[str]] | None = None  # image files: which fail to decode (Datasets.verify)
    advice: str = _RECIPE_ADVICE  # what to do about such files


def evaluate(target: str, split: str = "test", data: str | None = None, *, runs_dir: str = "runs",
             model_file: str = "model.keras", write: bool = True, unsafe: bool = False) -> dict:
    """Evaluate ``target`` (run, ``latest`` or .keras file) on ``split`` of its data, or on ``data``.

    One pass over the examples gives the predictions; the loss and the recipe's
    metrics are computed from them with the model's compiled loss and metrics.
    Writes ``RUN/eval/<name>/confusion_matrix*.png`` and ``report.json`` and a
    TensorBoard image under ``RUN/logs/eval`` when ``target`` belongs to a run. ``unsafe``: load a model
    that Keras safe mode refuses, trusting the file (``cnnctl.model.saved``).
    """
    loaded = load_model_or_run(target, runs_dir, model_file, unsafe=unsafe)
    chosen = eval_data(loaded, split, data)
    if chosen.examples == 0:
        raise UserError(f"{chosen.description} is empty: nothing to evaluate")
    model = loaded.model
    pre = [] if loaded.model is loaded.serving else preprocessing_layers(loaded.recipe, loaded.record)
    low, high = loaded.record["stored"].get("value_range", (0.0, 255.0))

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        if chosen.scale_pixels:
            x = low + x * ((high - low) / 255.0)
        for layer in pre:
            x = layer(x, training=False)
        return x, y

    batches = chosen.batches.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    with bad_files_named(chosen.verify, chosen.advice):  # an image cut short past its header fails only here
        y_true, predicted = _predict_all(model, batches)
    names = loaded.class_names
    outputs = []
    for out_name, values, logits in zip(output_names(model), predicted, outputs_are_logits(loaded), strict=True):
        scores = class_scores(values, logits)
        if scores is not None:
            outputs.append(_classification(out_name, scores, y_true, names))
    result = {
        "model": loaded.source, "data": chosen.description, "split": split, "examples": chosen.examples,
        "metrics": _metrics(loaded, y_true, predicted),
    }
    if len(predicted) > 1:
        result.update(_exits(model, outputs))
    result["outputs"] = outputs
    if write and loaded.run is not None:
        stem = Path(loaded.source).stem
        _write(loaded.run, chosen.name if stem == "model" else f"{chosen.name}-{stem}", result, loaded)
    return result


def _exits(model: keras.Model, outputs: list[dict]) -> dict:
    """Per output of a model with several, as an exit: its accuracy and the compute it takes (``exit_costs``)."""
    from cnnctl.model.report import exit_costs

    costs = exit_costs(model)
    accuracy = {o["output"]: o["summary"]["accuracy"] for o in outputs}
    exits = [{"output": name, "accuracy": accuracy.get(name), **cost}
             for name, cost in zip(output_names(model), costs["exits"], strict=True)]
    return {"exits": exits, "full_model": costs["full"]}


def _predict_all(model: keras.Model, batches: tf.data.Dataset) -> tuple[np.ndarray, list[np.ndarray]]:
    """The labels and every output's predictions, in one pass over the batches."""
    labels, outputs = [], []
    for x, y in batches:
        labels.append(y.numpy())
        outputs.append([np.asarray(o) for o in keras.tree.flatten(model.predict_on_batch(x))])
    return np.concatenate(labels), [np.concatenate(parts) for parts in zip(*outputs, strict=True)]


def _metrics(loaded: RunModel, y_true: np.ndarray, predicted: list[np.ndarray]) -> dict[str, float]:
    """The loss and metrics ``model.evaluate`` reports, from the predictions of the whole split at once.

    The total loss equals evaluate's; per-output losses are exact means over the
    examples, where evaluate averages its batches' means.
    """
    model = loaded.model
    count = len(predicted)
    if loaded.recipe is not None and loaded.model is not loaded.serving:
        compile_model(model, loaded.recipe)
    else:  # no recipe, or a serving export (whose outputs are not named as the recipe's): the usual classifier's
        losses = [keras.losses.BinaryCrossentropy() if p.shape[-1] == 1 else keras.losses.SparseCategoricalCrossentropy(
            from_logits=bool(logits)) for p, logits in zip(predicted, outputs_are_logits(loaded), strict=True)]
        model.compile(loss=losses if count > 1 else losses[0],
                      metrics=[["accuracy"]] * count if count > 1 else ["accuracy"])
    y = tuple([y_true] * count) if count > 1 else y_true
    y_pred = predicted if count > 1 else predicted[0]
    model.reset_metrics()
    loss = model.compute_loss(x=None, y=y, y_pred=y_pred, training=False)
    results = {k: float(v) for k, v in model.compute_metrics(None, y, y_pred, sample_weight=None).items()}
    results["loss"] = float(loss)
    return dict(sorted(results.items(), key=lambda kv: kv[0] != "loss"))


def eval_data(loaded: RunModel, split: str, data: str | None) -> EvalData:
    """The examples to evaluate on, labelled with the model's class indices."""
    if data is None:
        if loaded.recipe is None:
            raise UserError(f"{loaded.source} is not inside a run, so it has no data of its own; "
                            "give --data RECIPE (a recipe whose data to use) or --data DIR (class folders)")
        own = _from_recipe(loaded, loaded.recipe, split, "its own data", split)
        warn_if_changed(loaded.record, split, own.examples)
        return own
    path = Path(data)
    if path.is_dir():
        return _from_folder(loaded, path, split)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _from_recipe(loaded, load_recipe(str(path)), split, str(path), f"{path.stem}-{split}")
    what = "does not exist" if not path.exists() else "is neither a recipe (.yaml) nor a folder"
    raise UserError(f"--data {data} {what}; give a recipe file whose data to use, or a folder of class folders")


def _from_recipe(loaded: RunModel, recipe, split: str, what: str, name: str) -> EvalData:
    recipe = recipe.model_copy(update={"data": recipe.data.model_copy(update={"normalize": "none"})})
    datasets = build_datasets(recipe)  # only its raw splits are read: nothing to normalize or adapt
    mapping = _class_mapping(datasets.class_names, loaded.class_names, what)
    _check_class_count(datasets.class_names, loaded, what)
    _check_shape(datasets.stored_shape, loaded, what)
    stored = loaded.record["stored"]
    scale = datasets.stored_dtype == "uint8" and stored["dtype"] != "uint8"
    if stored["dtype"] == "uint8" and datasets.stored_dtype != "uint8":
        low, high = datasets.value_range
        raise UserError(f"{what} holds {datasets.stored_dtype} values ({low:g} to {high:g}), but {loaded.source} "
                        "was trained on 8-bit pixels (0 to 255); give it data stored the same way")
    batches = datasets.raw[split]
    if mapping is not None:
        table = tf.constant(mapping, tf.int32)
        batches = batches.map(lambda x, y: (x, tf.gather(table, tf.cast(y, tf.int32))))
    return EvalData(batches, datasets.sizes[split], f"the {split} split of {what} ({datasets.source})", name, scale,
                    verify=datasets.verify)


def _from_folder(loaded: RunModel, folder: Path, split: str) -> EvalData:
    """A folder of class folders (all of it), or the ``split`` folder of one with train/validation/test folders."""
    if loaded.recipe is None:
        raise UserError(f"{loaded.source} is not inside a run, so how its images were decoded is unknown; "
                        "give --data a recipe whose data section says so")
    stored = loaded.record["stored"]
    if len(stored["shape"]) != 3 or stored["shape"][-1] not in COLOR_MODES:
        raise UserError(f"{loaded.source} takes arrays of shape {stored['shape']}, not images; give --data a recipe "
                        "with data like its own")
    present = [n for names in SPLIT_FOLDERS.values() for n in names if (folder / n).is_dir()]
    if present:
        here = [n for n in SPLIT_FOLDERS[split] if (folder / n).is_dir()]
        if not here:
            raise UserError(f"{folder} has no {split} folder ({', '.join(SPLIT_FOLDERS[split])}); it has "
                            f"{', '.join(present)}: choose one with --split")
        folder = folder / here[0]
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [c for c in classes if c not in loaded.class_names]
    if unknown:
        listed = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UserError(f"{folder}: {'folders' if len(unknown) > 1 else 'folder'} {listed} "
                        f"{'are not classes' if len(unknown) > 1 else 'is not a class'} of the model "
                        f"({', '.join(loaded.class_names)})")
    if not classes:
        raise UserError(f"{folder} has no class folders; put each class's images ({', '.join(IMAGE_EXTENSIONS)}) "
                        "in a folder named after its class")
    doc = yaml.safe_load(dump_recipe(loaded.recipe))
    height, width, channels = stored["shape"]
    doc["data"] = {
        "source": "image_dir", "path": str(folder.resolve()), "class_names": loaded.class_names,
        "image_size": [height, width], "color_mode": COLOR_MODES[channels],
        "interpolation": getattr(loaded.recipe.data, "interpolation", "bilinear"),
        "split": {"validation": 0, "test": 0}, "normalize": "none", "on_error": "fail",
        "batch_size": loaded.recipe.data.batch_size,
    }
    try:
        datasets = build_datasets(load_recipe_text(yaml.safe_dump(doc, sort_keys=False), f"{folder} (eval --data)"))
    except RecipeError as exc:  # located in a recipe the user never wrote: keep the message only
        raise UserError(f"{folder}: {exc.problems[0].message}") from None
    except BadFiles as exc:  # its advice names a recipe key the user never wrote
        raise BadFiles(exc.files, _FOLDER_ADVICE) from None
    return EvalData(datasets.raw["train"], datasets.sizes["train"], f"every image in {folder}",
                    folder.resolve().name if not present else f"{folder.resolve().parent.name}-{split}",
                    scale_pixels=stored["dtype"] != "uint8", verify=datasets.verify, advice=_FOLDER_ADVICE)


def _class_mapping(data_names: list[str], model_names: list[str], what: str) -> list[int] | None:
    """The model's index of each of the data's classes, matched by name; None when they are the same list."""
    if not model_names or data_names == model_names:
        return None
    unknown = [n for n in data_names if n not in model_names]
    if unknown:
        raise UserError(f"{what}: class{'es' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown[:5]))} "
                        f"{'are' if len(unknown) > 1 else 'is'} not among the model's classes "
                        f"({', '.join(model_names)})")
    return [model_names.index(n) for n in data_names]


def _check_class_count(data_names: list[str], loaded: RunModel, what: str) -> None:
    """A model without class names (a .keras file of its own) must have a score for each of the data's classes."""
    if loaded.class_names:
        return  # matched by name (_class_mapping)
    units = [int(o.shape[-1]) for o in loaded.model.outputs if len(o.shape) == 2]
    classes = [2 if u == 1 else u for u in units]  # one sigmoid unit scores two classes
    if classes and len(data_names) > max(classes):
        listed = ", ".join(data_names[:12]) + (" ..." if len(data_names) > 12 else "")
        raise UserError(f"{what} has {len(data_names)} classes ({listed}), but {loaded.source} scores "
                        f"{max(classes)}: labels {max(classes)} and above are outside its outputs; give data of "
                        "the classes it was trained on")


def _check_shape(shape: tuple, loaded: RunModel, what: str) -> None:
    if tuple(shape) != loaded.stored_shape:
        raise UserError(f"{what} gives examples of shape {list(shape)}, but {loaded.source} was trained on "
                        f"{list(loaded.stored_shape)}; match image_size and color_mode (or the array shape)")


def _classification(output: str, probs: np.ndarray, y_true: np.ndarray, names: list[str]) -> dict:
    from cnnctl.confusion import confusion_matrix, per_class, summary

    count = probs.shape[-1]
    labels = list(names) if len(names) == count else [str(i) for i in range(count)]
    cm = confusion_matrix(y_true, probs.argmax(-1), count)
    return {"output": output, "classes": labels, "summary": summary(cm), "per_class": per_class(cm, labels),
            "confusion_matrix": cm.tolist()}


def _write(run: RunDir, name: str, result: dict, loaded: RunModel) -> None:
    """eval/<name>/report.json and confusion_matrix[_<output>].png; the same image in TensorBoard (logs/eval)."""
    from cnnctl.confusion import render_confusion, write_png

    folder = run / "eval" / name
    folder.mkdir(parents=True, exist_ok=True)
    several = len(result["outputs"]) > 1
    images = {}
    for output in result["outputs"]:
        title = f"{Path(loaded.source).name}, {name}" + (f", output {output['output']}" if several else "")
        image = render_confusion(np.array(output["confusion_matrix"]), output["classes"], title=title)
        png = folder / (f"confusion_matrix_{output['output']}.png" if several else "confusion_matrix.png")
        write_png(image, png)
        output["png"] = str(png)
        images[f"eval/{name}/confusion_matrix" + (f"/{output['output']}" if several else "")] = image
    run.write_json(f"eval/{name}/report.json", result)
    epochs = run.read_json("metrics.json").get("epochs", 0) if (run / "metrics.json").exists() else 0
    writer = tf.summary.create_file_writer(str(run / "logs" / "eval"))
    with writer.as_default():
        for tag, image in images.items():
            tf.summary.image(tag, image[None], step=epochs)
    writer.close()


def format_eval(result: dict) -> list[str]:
    """What ``cnnctl eval`` prints: the metrics, then per output the per-class table and the confusion matrix."""
    from cnnctl.tables import format_table

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
