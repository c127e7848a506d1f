"""``--set a.b[2].c=value``: change one value of a recipe before it is validated.

The value is read as YAML (``--set train.epochs=3`` gives the integer 3, ``1e-3``
a float). A key that does not exist is created here and then judged by the
schema, which rejects unknown keys with a did-you-mean, located at the ``--set``.
A name the recipe gives (a graph node, a block, an input) is not created by setting
something inside it: ``--set model.graph.conv9.Conv2D.filters=8`` with no node
``conv9`` is an error with a did-you-mean (set the node whole to add one). List
items count from 0, or from the end with a negative index (``model.layers[-1]``).
A key set inside a switch (``--set log.tensorboard.histogram_freq=0`` where the
recipe says ``tensorboard: true``) turns it into ``{enabled: true, ...}``.
"""

from __future__ import annotations

import itertools
import re

from cnnctl.errors import Problem, RecipeError, did_you_mean
from cnnctl.recipe.yaml_loader import Located, format_path, load_yaml

_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")
# Mappings whose keys are names the recipe chose: setting inside a name that is not there is a typo.
_NAMED = {("model", "graph"): "node", ("model", "blocks"): "block", ("model", "inputs"): "input"}


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
    walked: tuple = ()
    for part, following in itertools.pairwise(path):
        node, taken = _step(node, part, following, walked, where)
        walked = (*walked, taken)
    last = path[-1]
    if isinstance(last, int):
        last = _index(node, last, (*walked, last), where)
    elif not isinstance(node, dict):
        raise RecipeError(Problem(where, format_path(path), f"cannot set a key inside {type(node).__name__} {node!r}"))
    node[last] = given.data
    path = (*walked, last)  # negative indices counted from the front, as the schema locates its errors
    for marks in (doc.marks, doc.words):
        for p in [k for k in marks if k[: len(path)] == path]:
            del marks[p]
    doc.marks[path] = where
    doc.key_marks[path] = where
    doc.words.update({(*path, *p): word for p, word in given.words.items()})  # --set a.padding=no: the word


def _index(node, part: int, here: tuple, where: str) -> int:
    """``part`` as an index from the front of the list ``node`` (``-1``: its last item)."""
    size = len(node) if isinstance(node, list) else 0
    if not isinstance(node, list) or not -size <= part < size:
        raise RecipeError(Problem(where, format_path(here), f"no item [{part}] here: the list has {size} items"))
    return part % size


def _named_kind(parent: tuple) -> str | None:
    """``node``, ``block`` or ``input`` when ``parent`` is a mapping of names the recipe chose."""
    if len(parent) == 4 and parent[:2] == ("model", "blocks") and parent[3] == "graph":
        return "node"  # a block's own graph
    return _NAMED.get(parent)


def _step(node, part, next_part, here: tuple, where: str):
    """One step down the path: the child, and the key or (front-counted) index taken."""
    if isinstance(part, int):
        index = _index(node, part, (*here, part), where)
        return node[index], index
    if not isinstance(node, dict):
        raise RecipeError(Problem(where, format_path((*here, part)),
                                  f"cannot set a key inside {type(node).__name__} {node!r}"))
    kind = _named_kind(here)
    if kind is not None and part not in node:
        names = [str(k) for k in node]
        known = f"; the {kind}s are {', '.join(names)}" if names else ""
        raise RecipeError(Problem(where, format_path((*here, part)), f"no {kind} '{part}'"
                                  f"{did_you_mean(part, names)}{known}; to add a {kind}, set it whole "
                                  f"(--set {format_path((*here, part))}=...)"))
    if isinstance(node.get(part), bool) and not isinstance(next_part, int):
        node[part] = {"enabled": node[part]}  # a switch (log.tensorboard: true) opened up into its options
    if node.get(part) is None:
        node[part] = [] if isinstance(next_part, int) else {}
    return node[part], part
