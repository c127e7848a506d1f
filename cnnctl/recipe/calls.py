"""The model as ``cnnctl.recipe.graph`` resolves it: a flat list of layer calls, and the helpers both stages use.

Pure Python, no TensorFlow: ``cnnctl.model.build`` turns each ``Call`` into a Keras layer call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cnnctl.errors import Problem
from cnnctl.recipe.model_spec import InputSpec


@dataclass(frozen=True)
class Call:
    """One call of one Keras layer in the model's graph."""

    key: str  # unique in the graph; other calls list it in ``inputs``
    cls: str | None  # Keras or cnnctl class name; None when the layer of ``share`` is reused
    args: dict  # constructor arguments, parameters substituted, ``repeat`` removed
    inputs: tuple[str, ...]  # keys of calls or model inputs this call reads
    layer_name: str | None  # the Keras layer's name; None lets Keras choose
    share: str | None  # key of the call whose layer (and weights) this call reuses
    path: tuple  # where the class is written: ``(*path, cls, arg)`` locates an argument
    context: str = ""  # " (in block 'res' used at model.graph.s1)" for calls made by a block


@dataclass(frozen=True)
class Graph:
    inputs: dict[str, InputSpec]
    calls: tuple[Call, ...]
    outputs: tuple[str, ...]  # keys of the calls whose results the model returns
    output_names: tuple[str, ...]  # the same, as the recipe names them
    sequential: bool  # a plain chain: built as keras.Sequential

    def dead_calls(self) -> tuple[Call, ...]:
        """The calls no output depends on, in order: the recipe makes them, but they are not part of the model
        (a node read by nothing, or a branch that ends before an output). A call whose layer a live call
        shares is live."""
        by_key = {call.key: call for call in self.calls}
        live: set[str] = set()
        todo = list(self.outputs)
        while todo:
            key = todo.pop()
            if key in live or key not in by_key:
                continue
            live.add(key)
            todo.extend(by_key[key].inputs)
            if by_key[key].share is not None:
                todo.append(by_key[key].share)
        return tuple(call for call in self.calls if call.key not in live)


def snake(name: str) -> str:
    """Keras's own naming: ``Conv2D`` -> ``conv2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def split_spec(spec: Any) -> tuple[str, dict]:
    """``"Flatten"`` or ``{"Conv2D": {...}}`` -> ``(class name, arguments)``."""
    if isinstance(spec, str):
        return spec, {}
    ((cls, args),) = spec.items()
    return cls, dict(args or {})


def dedupe(problems: list[Problem]) -> list[Problem]:
    """A mistake inside a block used many times is reported once, at its first use."""
    seen, out = set(), []
    for p in problems:
        if (p.where, p.path) not in seen:
            seen.add((p.where, p.path))
            out.append(p)
    return out
