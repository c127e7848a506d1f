"""What ``cnnctl eval`` measures on: the run's own split, another recipe's data, or a folder of class folders.

Every source is read as stored and labelled with the model's class indices (classes
are matched by name, so a folder holding only some of the classes is fine); the
evaluation then preprocesses it as the run's test split was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from cnnctl.data.pipeline import build_datasets
from cnnctl.data.sources.image_dir import SPLIT_FOLDERS
from cnnctl.data.sources.images import COLOR_MODES, BadFiles
from cnnctl.errors import RecipeError, UserError
from cnnctl.filekinds import IMAGE_EXTENSIONS
from cnnctl.recipe import Recipe, load_recipe
from cnnctl.recipe.data_spec import DataSpec
from cnnctl.serving.model import RunModel, warn_if_changed

RECIPE_ADVICE = "remove or replace them, or set data.on_error: skip in the recipe to leave them out"
FOLDER_ADVICE = "remove or replace them: eval --data DIR reads every image in the folder"


@dataclass
class EvalData:
    """Raw batches (x as stored, y as the model's class indices), their size and what they are."""

    batches: tf.data.Dataset
    examples: int
    description: str
    name: str  # the folder of eval/ the results go to
    scale_pixels: bool = False  # 8-bit pixels for a model whose data was stored on another scale (digits: 0-1)
    verify: Callable[[], list[str]] | None = None  # image files: which fail to decode (Datasets.verify)
    advice: str = RECIPE_ADVICE  # what to do about such files


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


def _from_recipe(loaded: RunModel, recipe: Recipe, split: str, what: str, name: str) -> EvalData:
    spec = recipe.data.model_copy(update={"normalize": "none"})  # only its raw splits are read: nothing to adapt
    datasets = build_datasets(spec, recipe.seed)
    mapping = _class_mapping(datasets.class_names, loaded.class_names, what)
    _check_class_count(datasets.class_names, loaded, what)
    _check_shape(datasets.stored_shape, loaded, what)
    stored = loaded.record.stored
    scale = datasets.stored_dtype == "uint8" and stored.dtype != "uint8"
    if stored.dtype == "uint8" and datasets.stored_dtype != "uint8":
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
    stored = loaded.record.stored
    if not stored.is_image:
        raise UserError(f"{loaded.source} takes arrays of shape {list(stored.shape)}, not images; give --data a "
                        "recipe with data like its own")
    present = [n for names in SPLIT_FOLDERS.values() for n in names if (folder / n).is_dir()]
    if present:
        here = [n for n in SPLIT_FOLDERS[split] if (folder / n).is_dir()]
        if not here:
            raise UserError(f"{folder} has no {split} folder ({', '.join(SPLIT_FOLDERS[split])}); it has "
                            f"{', '.join(present)}: choose one with --split")
        folder = folder / here[0]
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [c for c in classes if loaded.class_names and c not in loaded.class_names]
    if unknown:
        listed = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise UserError(f"{folder}: {'folders' if len(unknown) > 1 else 'folder'} {listed} "
                        f"{'are not classes' if len(unknown) > 1 else 'is not a class'} of the model "
                        f"({', '.join(loaded.class_names)})")
    if not classes:
        raise UserError(f"{folder} has no class folders; put each class's images ({', '.join(IMAGE_EXTENSIONS)}) "
                        "in a folder named after its class")
    _check_class_count(classes, loaded, str(folder))
    height, width, channels = stored.shape
    # a .keras file outside any run is decoded as predict decodes its images: image_dir's defaults (bilinear), and
    # its classes, without a labels.txt beside it, are the folders in order (as image_dir numbers them)
    own = {} if loaded.recipe is None else {"interpolation": loaded.recipe.data.interpolation,
                                            "batch_size": loaded.recipe.data.batch_size}
    try:
        spec = DataSpec.model_validate({
            "source": "image_dir", "path": str(folder.resolve()), "class_names": loaded.class_names or classes,
            "image_size": [height, width], "color_mode": COLOR_MODES[channels],
            "split": {"validation": 0.0, "test": 0.0}, "normalize": "none", "on_error": "fail", **own,
        })
        datasets = build_datasets(spec, loaded.recipe.seed if loaded.recipe is not None else 0)
    except RecipeError as exc:  # located in a recipe the user never wrote: keep the message only
        raise UserError(f"{folder}: {exc.problems[0].message}") from None
    except BadFiles as exc:  # its advice names a recipe key the user never wrote
        raise BadFiles(exc.files, FOLDER_ADVICE) from None
    return EvalData(datasets.raw["train"], datasets.sizes["train"], f"every image in {folder}",
                    folder.resolve().name if not present else f"{folder.resolve().parent.name}-{split}",
                    scale_pixels=stored.dtype != "uint8", verify=datasets.verify, advice=FOLDER_ADVICE)


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


