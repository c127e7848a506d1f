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
from cnnctl.recipe.catalogue import builtin_path
from cnnctl.recipe.data_spec import PIPELINE_KEYS
from cnnctl.recipe.limits import check_limits
from cnnctl.recipe.overrides import apply_override
from cnnctl.recipe.schema import Recipe
from cnnctl.recipe.yaml_loader import Located, boolean_message, key_name, load_yaml, load_yaml_file


def load_recipe(path: str, overrides: Iterable[str] = ()) -> Recipe:
    """Load and validate a recipe file (or a built-in recipe, by name); raise ``RecipeError`` naming every problem."""
    return recipe_from_doc(load_yaml_file(builtin_path(path)), overrides)


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
        raise RecipeError(_problems(doc, exc.errors())) from None
    recipe.locate(doc)
    check_limits(recipe)  # sizes that would not fit in memory, before anything is allocated
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
    read = recipe.data.source_keys()  # keys of other sources would be refused when the run reloads it
    data["data"] = {k: v for k, v in data["data"].items() if k in PIPELINE_KEYS or (k in read and v is not None)}
    data["train"] = {k: v for k, v in data["train"].items() if k != "loss_weights" or v is not None}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _problems(doc: Located, errors: list) -> list[Problem]:
    """One problem per mistake: of a union's alternatives (``str | dict``), only the one the value was meant for."""
    groups: dict = {}
    for i, err in enumerate(_expanded(errors)):
        loc, union, tag = _without_union_tags(doc.data, tuple(err["loc"]), err["type"])
        groups.setdefault(union if union is not None else i, []).append((loc, tag, err))
    problems: list[Problem] = []
    for key, found in groups.items():
        items = _meant(_value_at(doc.data, key), key, found) if not isinstance(key, int) and len(found) > 1 else found
        for loc, _, err in items:
            problem = _problem(doc, loc, err)
            if problem not in problems:
                problems.append(problem)
    return problems


def _expanded(errors: list) -> list:
    """A part validated against a schema its value chose (an export format's options) reports its own errors
    (``nested``): each becomes an error of the recipe, at its place inside the part."""
    out = []
    for err in errors:
        if err["type"] != "nested":
            out.append(err)
            continue
        ctx = err["ctx"]
        for inner in ctx["errors"]:
            out.append({**inner, "loc": (*err["loc"], ctx["at"], *inner["loc"]), "known": ctx["known"]})
    return out


def _without_union_tags(data: typing.Any, loc: tuple, kind: str) -> tuple[tuple, tuple | None, str | None]:
    """pydantic names a union's alternative in ``loc`` (``data.path.str``); the key path without it, where the
    union is, and the alternative."""
    node, out, union, tag, lost = data, [], None, None, False
    for i, part in enumerate(loc):
        if lost:
            pass
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and (i < len(loc) - 1 or kind != "missing"):
            if union is None:
                union, tag = tuple(out), part
            continue
        else:
            lost = True
        out.append(part)
    return tuple(out), union, tag


def _value_at(data: typing.Any, path: tuple) -> typing.Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _meant(value: typing.Any, at: tuple, items: list) -> list:
    """The errors of the union alternative that fits ``value``: a mapping's, a list's or a scalar's."""
    if isinstance(value, bool):
        named = [item for item in items if item[0] == at and item[2]["type"] in _NAME_ERRORS]
        if named:
            return named[:1]

    def fits(tag: str) -> bool:
        if isinstance(value, dict):
            return "dict" in tag or tag[:1].isupper()
        if isinstance(value, list):
            return "list" in tag
        return "dict" not in tag and "list" not in tag and not tag[:1].isupper()

    return [item for item in items if fits(item[1])] or items


_NAME_ERRORS = ("string_type", "literal_error", "yaml_bool")


def _problem(doc: Located, loc: tuple, err: dict) -> Problem:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = err["known"] if "known" in err else _fields_at(loc[:-1])
        hint = did_you_mean(loc[-1], known)
        if not hint and known:
            hint = f"; known keys: {', '.join(sorted(known))}"
        return doc.problem(loc, f"unknown key '{loc[-1]}'{hint}", key=True)
    if kind == "at_key":  # a model validator that names the key it is about
        return doc.problem((*loc, err["ctx"]["at"]), err["msg"], key=err["ctx"]["key"])

    if kind == "missing":
        return doc.problem(loc[:-1], f"missing required key '{loc[-1]}'")
    if kind == "yaml_bool" or (kind in _NAME_ERRORS and isinstance(err.get("input"), bool)):
        return _boolean_problem(doc, loc, err)
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif "input" in err and not isinstance(err["input"], (dict, list)):
        got = err["input"]
        message = f"{message}, got {got!r}"
        if kind == "literal_error" and isinstance(got, str):
            message += did_you_mean(got, err.get("ctx", {}).get("expected", "").replace("'", "").split(" or "))
    return doc.problem(loc, message)


def _boolean_problem(doc: Located, loc: tuple, err: dict) -> Problem:
    """``name: no`` where a string was expected: say that YAML read a boolean, and how to write the word."""
    kind, ctx = err["type"], err.get("ctx", {})
    expected = {"string_type": "a string", "literal_error": f"one of {ctx.get('expected')}",
                "yaml_bool": ctx.get("expected")}[kind]
    if loc and isinstance(loc[-1], str) and _accepts_none(loc):
        expected += " (or null for none)"
    path = loc
    if loc not in doc.words:  # a validator of a whole list (train.metrics): the one boolean in it
        inside = [p for p in doc.words if p[: len(loc)] == loc]
        path = inside[0] if len(inside) == 1 else loc
    value = _value_at(doc.data, path)
    if not isinstance(value, bool):
        return doc.problem(loc, f"expected {expected}; YAML reads an unquoted yes/no/on/off as a boolean: quote "
                                "the word if you meant one")
    return doc.problem(path, boolean_message(value, key_name(path), expected, doc.words.get(path)))


def _accepts_none(loc: tuple) -> bool:
    field = _field_at(loc)
    return field is not None and type(None) in typing.get_args(field.annotation)


def _fields_at(loc: tuple) -> list[str]:
    """The keys the schema allows at ``loc`` (for did-you-mean on an unknown key)."""
    if not loc:
        return list(Recipe.model_fields)
    field = _field_at(loc)
    return list(getattr(_model_in(field.annotation), "model_fields", {})) if field is not None else []


def _field_at(loc: tuple) -> typing.Any:
    """The schema's ``FieldInfo`` for the key at ``loc`` (list indices skipped), or None."""
    model: typing.Any = Recipe
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = _model_in(field.annotation)
    return field


def _model_in(annotation: typing.Any) -> typing.Any:
    """The pydantic model inside ``X``, ``list[X]`` or ``Optional[X]``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
