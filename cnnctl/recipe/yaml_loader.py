"""Safe YAML with positions: every value remembers the line and column it came from.

PyYAML's own behaviour is changed in two places, both to spare recipe authors a
silent surprise:

- ``1e-3`` is a float (YAML 1.2); PyYAML's YAML 1.1 resolver reads it as a string.
- A key given twice in one mapping is an error naming both lines; PyYAML keeps the
  last one silently.

Only the safe constructors are used: a tag that would build a Python object is
refused with its location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnnctl.errors import Problem, RecipeError

Path = tuple  # of str keys and int list indices


def format_path(path: Path) -> str:
    """``("model", "layers", 3, "Conv2D")`` -> ``model.layers[3].Conv2D``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-3``."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


@dataclass
class Located:
    """A loaded YAML document and where each of its values came from."""

    data: Any
    source: str
    marks: dict = field(default_factory=dict)  # path -> "file:line:col" of the value
    key_marks: dict = field(default_factory=dict)  # path -> "file:line:col" of the key

    def where(self, path: Path, *, key: bool = False) -> str:
        """The location of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if key and path in self.key_marks:
                return self.key_marks[path]
            if path in self.marks:
                return self.marks[path]
            if not path:
                return self.source
            path = path[:-1]

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        where = self.where(path, key=key)
        return Problem(where, format_path(path), message + self.override_note(path, where))

    def override_note(self, path: Path, where: str) -> str:
        """`` (set by --set K=V)`` when an override below ``path`` made the value what it is."""
        path = tuple(path)
        sets = sorted({m for p, m in self.marks.items() if p[: len(path)] == path and m.startswith("--set")})
        sets = [m for m in sets if m != where]
        return f" (changed by {', '.join(sets)})" if sets and len(path) > 1 else ""


def _mark(source: str, node: yaml.Node) -> str:
    m = node.start_mark
    return f"{source}:{m.line + 1}:{m.column + 1}"


_PLAIN_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _construct(node: yaml.Node, loader: _Loader, doc: Located, path: Path) -> Any:
    doc.marks[path] = _mark(doc.source, node)
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise RecipeError(Problem(_mark(doc.source, node), format_path(path), _tag_refused(node.tag)))
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = _construct_scalar(key_node, loader, doc, path)
            if key in seen:
                raise RecipeError(
                    Problem(
                        _mark(doc.source, key_node),
                        format_path((*path, key)),
                        f"duplicate key '{key}' (first given at line {seen[key]}); "
                        "YAML would keep only the last value, so give it once",
                    )
                )
            seen[key] = key_node.start_mark.line + 1
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merges
        out = {}
        for key_node, value_node in node.value:
            key = _construct_scalar(key_node, loader, doc, path)
            doc.key_marks[(*path, key)] = _mark(doc.source, key_node)
            out[key] = _construct(value_node, loader, doc, (*path, key))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, loader, doc, (*path, i)) for i, v in enumerate(node.value)]
    return _construct_scalar(node, loader, doc, path)


def _construct_scalar(node: yaml.Node, loader: _Loader, doc: Located, path: Path) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise RecipeError(
            Problem(_mark(doc.source, node), format_path(path), "a mapping key must be a plain name")
        )
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise RecipeError(
            Problem(
                _mark(doc.source, node),
                format_path(path),
                _tag_refused(node.tag),
            )
        ) from exc


def _tag_refused(tag: str) -> str:
    short = "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag
    return f"YAML tag '{short}' is not allowed: a recipe holds data, never Python objects"


def load_yaml(text: str, source: str = "<string>") -> Located:
    """Parse one YAML document into plain data with the position of every value."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = exc.problem or exc.context or "invalid YAML"
        raise RecipeError(Problem(where, "", f"invalid YAML: {what}")) from None
    except yaml.YAMLError as exc:
        raise RecipeError(Problem(source, "", f"invalid YAML: {exc}")) from None
    finally:
        loader.dispose()
    doc = Located(data=None, source=source)
    if node is not None:
        doc.data = _construct(node, loader, doc, ())
    return doc


def load_yaml_file(path: str) -> Located:
    """Read and parse a YAML file; a missing or unreadable file is a user error."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise RecipeError(Problem(path, "", "no such file")) from None
    except IsADirectoryError:
        raise RecipeError(Problem(path, "", "is a directory, expected a YAML recipe file")) from None
    except UnicodeDecodeError:
        raise RecipeError(Problem(path, "", "is not UTF-8 text; is it really a YAML recipe?")) from None
    except OSError as exc:
        raise RecipeError(Problem(path, "", f"cannot read: {exc.strerror}")) from None
    return load_yaml(text, source=path)
