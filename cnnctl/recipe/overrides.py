"""``--set a.b[2].c=value``: change one value of a recipe before it is validated.

The value is read as YAML (``--set train.epochs=3`` gives the integer 3, ``1e-3``
a float). A key that does not exist is created here and then judged by the
schema, which rejects unknown keys with a did-you-mean, located at the ``--set``.
A key set inside a switch (``--set log.tensorboard.histogram_freq=0`` where the
recipe says ``tensorboard: true``) turns it into ``{enabled: true, ...}``.
"""

from __future__ import annotations

import re

from cnnctl.errors import Problem, RecipeError
from cnnctl.recipe.yaml_loader import Located, format_path, load_yaml

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def parse_path(text: str, where: str) -> tuple:
    """``model.layers[3].Conv2D.filters`` -> ``("model", "layers", 3, "Conv2D", "filters")``."""
    parts: list = []
    pos = 0
    while pos < len(text):
        if parts and not text.startswith("[", pos):
            if not text.startswith(".", pos):
                break
            pos += 1
        m = _TOKEN.match(text, pos)
        if not m:
            break
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if pos != len(text) or not parts or not isinstance(parts[0], str):
        raise RecipeError(
            Problem(where, "", f"'{text}' is not a key path; write it as section.key or model.layers[3].Conv2D.filters")
        )
    return tuple(parts)


def apply_override(doc: Located, assignment: str) -> None:
    """Apply one ``KEY=VALUE`` to the loaded document, in place."""
    where = f"--set {assignment}"
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise RecipeError(Problem(where, "", "expected KEY=VALUE, e.g. --set train.epochs=3"))
    path = parse_path(key.strip(), where)
    try:
        given = load_yaml(raw, source=where)
    except RecipeError as exc:
        message = exc.problems[0].message
        raise RecipeError(Problem(where, format_path(path), f"the value is {message}")) from None
    node = doc.data
    for depth, part in enumerate(path[:-1]):
        here = path[: depth + 1]
        node = _step(node, part, path[depth + 1], here, where)
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            size = len(node) if isinstance(node, list) else 0
            raise RecipeError(Problem(where, format_path(path), f"no item [{last}] here: the list has {size} items"))
    elif not isinstance(node, dict):
        raise RecipeError(Problem(where, format_path(path), f"cannot set a key inside {type(node).__name__} {node!r}"))
    node[last] = given.data
    for marks in (doc.marks, doc.words):
        for p in [k for k in marks if k[: len(path)] == path]:
            del marks[p]
    doc.marks[path] = where
    doc.key_marks[path] = where
    doc.words.update({(*path, *p): word for p, word in given.words.items()})  # --set a.padding=no: the word


def _step(node, part, next_part, here: tuple, where: str):
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            size = len(node) if isinstance(node, list) else 0
            raise RecipeError(Problem(where, format_path(here), f"no item [{part}] here: the list has {size} items"))
        return node[part]
    if not isinstance(node, dict):
        raise RecipeError(Problem(where, format_path(here), f"cannot set a key inside {type(node).__name__} {node!r}"))
    if isinstance(node.get(part), bool) and not isinstance(next_part, int):
        node[part] = {"enabled": node[part]}  # a switch (log.tensorboard: true) opened up into its options
    if node.get(part) is None:
        node[part] = [] if isinstance(next_part, int) else {}
    return node[part]
