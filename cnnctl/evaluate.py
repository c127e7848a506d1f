"""A run's model (or a .keras file) -> metrics, per-class precision/recall/F1 and confusion matrices.

The data is the run's own split, another recipe's data (``--data recipe.yaml``)
or a folder of class sub-folders (``--data DIR``), read as stored and passed
through the run's preprocessing (``cnnctl.inference``), so every source is
measured the way the run's test split was. Classes are matched by name, so a
folder holding only some of the classes is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import yaml

from cnnctl.data import Datasets, build_datasets
from cnnctl.data.files import IMAGE_EXTENSIONS, SPLIT_FOLDERS
from cnnctl.errors import UserError
from cnnctl.inference import RunModel, load_model_or_run, preprocessing_layers
from cnnctl.recipe import load_recipe, load_recipe_text
from cnnctl.recipe.load import dump_recipe
from cnnctl.rundir import RunDir
from cnnctl.train import compile_model, for_outputs

_MAX_PRINTED_CLASSES = 20


def run_datasets(run: RunDir, recipe) -> Datasets:
    """The run's data, normalized with the statistics stored at training time (data.json), if any."""
    stored = run.read_json("data.json") if (run / "data.json").exists() else {}
    return build_datasets(recipe, normalization=stored.get("normalization"))


@dataclass
class EvalData:
    """Raw batches (x as stored, y as the model's class indices), their size and what they are."""

    batches: tf.data.Dataset
    examples: int
    description: str
    name: str  # the folder of eval/ the results go to


def evaluate(target: str, split: str = "test", data: str | None = None, *, runs_dir: str = "runs",
             model_file: str = "model.keras", write: bool = True) -> dict:
    """Evaluate ``target`` (run, ``latest`` or .keras file) on ``split`` of its data, or on ``data``.

    Writes ``RUN/eval/<name>/confusion_matrix*.png`` and ``report.json`` and a
    TensorBoard image under ``RUN/logs/eval`` when ``target`` belongs to a run.
    """
    loaded = load_model_or_run(target, runs_dir, model_file)
    chosen = eval_data(loaded, split, data)
    if chosen.examples == 0:
        raise UserError(f"{chosen.description} is empty: nothing to evaluate")
    model = loaded.model
    in_model = loaded.recipe is None or loaded.model is loaded.serving  # an export takes examples as stored
    pre = [] if in_model else preprocessing_layers(loaded.recipe, loaded.record)

    def prepare(x, y):
        x = tf.cast(x, tf.float32)
        for layer in pre:
            x = layer(x, training=False)
        return x, y

    batches = chosen.batches.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    outputs = len(model.outputs)
    if loaded.recipe is not None:
        compile_model(model, loaded.recipe)
    else:
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    metrics = model.evaluate(for_outputs(batches, outputs), return_dict=True, verbose=0)
    y_true = np.concatenate([y.numpy() for _, y in chosen.batches])
    predicted = keras.tree.flatten(model.predict(batches, verbose=0))
    names = loaded.class_names or [str(i) for i in range(_classes(model))]
    result = {
        "model": loaded.source, "data": chosen.description, "split": split, "examples": chosen.examples,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "outputs": [_classification(out_name, probs, y_true, names)
                    for out_name, probs in zip(_output_names(model), predicted, strict=True) if _is_classes(probs)],
    }
    run = loaded.run
    if write and run is not None:
        _write(run, chosen.name, result, names, loaded)
    return result


def eval_data(loaded: RunModel, split: str, data: str | None) -> EvalData:
    """The examples to evaluate on, labelled with the model's class indices."""
    if data is None:
        if loaded.recipe is None:
            raise UserError(f"{loaded.source} is not inside a run, so it has no data of its own; "
                            "give --data RECIPE (a recipe whose data to use) or --data DIR (class folders)")
        return _from_recipe(loaded, loaded.recipe, split, "its own data", split)
    path = Path(data)
    if path.is_dir():
        return _from_folder(loaded, path, split)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _from_recipe(loaded, load_recipe(str(path)), split, str(path), f"{path.stem}-{split}")
    what = "does not exist" if not path.exists() else "is neither a recipe (.yaml) nor a folder"
    raise UserError(f"--data {data} {what}; give a recipe file whose data to use, or a folder of class folders")


def _from_recipe(loaded: RunModel, recipe, split: str, what: str, name: str) -> EvalData:
    datasets = build_datasets(recipe)
    mapping = _class_mapping(datasets.class_names, loaded.class_names, what)
    _check_shape(datasets.stored_shape, loaded, what)
    batches = datasets.raw[split]
    if mapping is not None:
        table = tf.constant(mapping, tf.int32)
        batches = batches.map(lambda x, y: (x, tf.gather(table, tf.cast(y, tf.int32))))
    return EvalData(batches, datasets.sizes[split], f"the {split} split of {what} ({datasets.source})", name)


def _from_folder(loaded: RunModel, folder: Path, split: str) -> EvalData:
    """A folder of class folders (all of it), or of train/validation/test folders (``split``)."""
    if loaded.recipe is None:
        raise UserError(f"{loaded.source} is not inside a run, so how its images were decoded is unknown; "
                        "give --data a recipe whose data section says so")
    stored = loaded.record["stored"]
    if len(stored["shape"]) != 3 or stored["dtype"] != "uint8":
        raise UserError(f"{loaded.source} was trained on {loaded.record.get('source', 'arrays')}, not images; "
                        "give --data a recipe with data like it")
    splits = [s for s, names in SPLIT_FOLDERS.items() if any((folder / n).is_dir() for n in names)]
    classes = sorted(p.name for f in ([folder / n for s in splits for n in SPLIT_FOLDERS[s]] or [folder])
                     if f.is_dir() for p in f.iterdir() if p.is_dir())
    unknown = [c for c in classes if c not in loaded.class_names]
    if unknown or not classes:
        raise UserError(f"{folder}: folder{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                        f"{'are' if len(unknown) > 1 else 'is'} not a class of the model "
                        f"({', '.join(loaded.class_names)})" if unknown else
                        f"{folder} has no class folders; put each class's images "
                        f"({', '.join(IMAGE_EXTENSIONS)}) in a folder named after it")
    doc = yaml.safe_load(dump_recipe(loaded.recipe))
    spec = loaded.recipe.data
    height, width, channels = stored["shape"]
    doc["data"] = {
        "source": "image_dir", "path": str(folder.resolve()), "class_names": loaded.class_names,
        "image_size": [height, width], "color_mode": {1: "grayscale", 3: "rgb", 4: "rgba"}[channels],
        "interpolation": getattr(spec, "interpolation", "bilinear"), "split": {"validation": 0, "test": 0},
        "batch_size": spec.batch_size, "on_error": "fail",
    }
    recipe = load_recipe_text(yaml.safe_dump(doc), f"{folder} (eval --data)")
    part = split if splits else "train"
    if splits and split not in splits:
        raise UserError(f"{folder} has no {split} folder ({', '.join(SPLIT_FOLDERS[split])}); "
                        f"it has {', '.join(splits)}: choose one with --split")
    datasets = build_datasets(recipe)
    described = f"the {split} folder of {folder}" if splits else f"every image in {folder}"
    name = f"{folder.resolve().name}-{split}" if splits else folder.resolve().name
    return EvalData(datasets.raw[part], datasets.sizes[part], described, name)


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


def _check_shape(shape: tuple, loaded: RunModel, what: str) -> None:
    if tuple(shape) != loaded.stored_shape:
        raise UserError(f"{what} gives examples of shape {list(shape)}, but {loaded.source} was trained on "
                        f"{list(loaded.stored_shape)}; match image_size and color_mode (or the array shape)")


def _classes(model: keras.Model) -> int:
    return int(model.outputs[-1].shape[-1])


def _output_names(model: keras.Model) -> list[str]:
    return list(model.output_names) if len(model.outputs) > 1 else [model.name]


def _is_classes(probs: np.ndarray) -> bool:
    """A class vector per example (softmax or logits), not a regression output."""
    return probs.ndim == 2 and probs.shape[-1] > 1


def _classification(output: str, probs: np.ndarray, y_true: np.ndarray, names: list[str]) -> dict:
    from cnnctl.confusion import confusion_matrix, per_class, summary

    count = probs.shape[-1]
    labels = names if len(names) == count else [str(i) for i in range(count)]
    cm = confusion_matrix(y_true, probs.argmax(-1), count)
    return {"output": output, "classes": labels, "summary": summary(cm), "per_class": per_class(cm, labels),
            "confusion_matrix": cm.tolist()}


def _write(run: RunDir, name: str, result: dict, names: list[str], loaded: RunModel) -> None:
    """eval/<name>/report.json and confusion_matrix[_<output>].png; the same image in TensorBoard (logs/eval)."""
    from cnnctl.confusion import render_confusion, write_png

    folder = run / "eval" / name
    folder.mkdir(parents=True, exist_ok=True)
    several = len(result["outputs"]) > 1
    images = {}
    for output in result["outputs"]:
        title = f"{Path(loaded.source).name} on {result['data']}" + (f", output {output['output']}" if several else "")
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
    for output in result["outputs"]:
        lines.append("")
        if len(result["outputs"]) > 1:
            lines.append(f"output {output['output']}:")
        rows = [[c["name"], c["precision"], c["recall"], c["f1"], c["support"]] for c in output["per_class"]]
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
