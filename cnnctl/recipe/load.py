"""recipe file -> validated ``Recipe``: load, apply --set overrides, check the schema.

Nothing here imports TensorFlow: a wrong recipe is reported in a fraction of a
second, every problem at once, each with file:line:col and its key path.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Iterable

import pydantic
import yaml

from cnnctl.errors import Problem, RecipeError, did_you_mean
from cnnctl.recipe.data_spec import SOURCE_KEYS, SOURCE_SPECIFIC
from cnnctl.recipe.overrides import apply_override
from cnnctl.recipe.schema import Recipe
from cnnctl.recipe.yaml_loader import Located, load_yaml, load_yaml_file


def load_recipe(path: str, overrides: Iterable[str] = ()) -> Recipe:
    """Load and validate a recipe file; raise ``RecipeError`` naming every problem."""
    return recipe_from_doc(load_yaml_file(path), overrides)


def load_recipe_text(text: str, source: str = "<string>", overrides: Iterable[str] = ()) -> Recipe:
    """As ``load_recipe``, from YAML text (tests, the Python API)."""
    return recipe_from_doc(load_yaml(text, source=source), overrides)


def recipe_from_doc(doc: Located, overrides: Iterable[str] = ()) -> Recipe:
    if not isinstance(doc.data, dict):
        what = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise RecipeError(
            Problem(doc.where(()), "", f"the recipe is {what}; expected a mapping with sections such as "
                    "name, data, model, train")
        )
    if "name" not in doc.data:
        stem = os.path.splitext(os.path.basename(doc.source))[0]
        doc.data["name"] = re.sub(r"[^A-Za-z0-9._-]", "_", stem) or "run"
    for assignment in overrides:
        apply_override(doc, assignment)
    anchor_paths(doc)
    try:
        recipe = Recipe.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise RecipeError([_problem(doc, err) for err in exc.errors()]) from None
    recipe._located = doc
    recipe.graph  # noqa: B018  (the model's structure: blocks, from, share; still no TensorFlow)
    return recipe


def anchor_paths(doc: Located) -> None:
    """Make ``data.path`` and a ``data.cache`` file absolute, so a run's stored recipe works from anywhere.

    A path written in the recipe file is relative to the file's folder; one given
    with ``--set`` is relative to the current directory, as a shell user expects.
    """
    data = doc.data.get("data")
    if not isinstance(data, dict):
        return
    here = os.path.dirname(os.path.abspath(doc.source)) if os.path.isfile(doc.source) else os.getcwd()

    def anchored(value: object, path: tuple) -> object:
        if not isinstance(value, str) or not value or (path == ("data", "cache") and value in ("none", "memory")):
            return value
        base = os.getcwd() if doc.where(path).startswith("--set") else here
        return os.path.normpath(os.path.join(base, os.path.expanduser(value)))

    if isinstance(data.get("path"), dict):
        data["path"] = {k: anchored(v, ("data", "path", k)) for k, v in data["path"].items()}
    elif "path" in data:
        data["path"] = anchored(data["path"], ("data", "path"))
    if "cache" in data:
        data["cache"] = anchored(data["cache"], ("data", "cache"))


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe (defaults filled in) as YAML, as a run stores it."""
    data = recipe.model_dump(mode="json")
    data["model"] = {k: v for k, v in data["model"].items() if v is not None and v != {}}
    read = SOURCE_KEYS[recipe.data.kind]  # keys of other sources would be refused when the run reloads it
    data["data"] = {k: v for k, v in data["data"].items() if k not in SOURCE_SPECIFIC or (k in read and v is not None)}
    data["train"] = {k: v for k, v in data["train"].items() if k != "loss_weights" or v is not None}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _problem(doc: Located, err: dict) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _fields_at(loc[:-1])
        hint = did_you_mean(loc[-1], known)
        if not hint and known:
            hint = f"; known keys: {', '.join(sorted(known))}"
        return doc.problem(loc, f"unknown key '{loc[-1]}'{hint}", key=True)
    if kind == "at_key":  # a model validator that names the key it is about
        return doc.problem((*loc, err["ctx"]["at"]), err["msg"], key=err["ctx"]["key"])
    if kind == "missing":
        return doc.problem(loc[:-1], f"missing required key '{loc[-1]}'")
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif "input" in err and not isinstance(err["input"], (dict, list)):
        got = err["input"]
        message = f"{message}, got {got!r}"
        if kind == "literal_error" and isinstance(got, str):
            message += did_you_mean(got, err.get("ctx", {}).get("expected", "").replace("'", "").split(" or "))
    return doc.problem(loc, message)


def _fields_at(loc: tuple) -> list[str]:
    """The keys the schema allows at ``loc`` (for did-you-mean on an unknown key)."""
    model: typing.Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: typing.Any) -> typing.Any:
    """The pydantic model inside ``X``, ``list[X]`` or ``Optional[X]``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
