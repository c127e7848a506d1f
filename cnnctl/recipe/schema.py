"""The recipe schema: every section, its keys, their types and defaults.

The defaults here are documentation: ``cnnctl recipes`` and docs/recipe.md show
them. Validation is strict (``1`` is not ``true``, ``"3"`` is not ``3``) and
unknown keys are errors, so a typo never passes silently. Layer arguments are
checked later against the Keras class itself (``cnnctl.model.arguments``), since
that needs Keras. Each section lives in a module of its own (``data_spec``,
``model_spec``, ``train_spec``, ``export_spec``); ``Recipe`` puts them together.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, PrivateAttr

from cnnctl.recipe.calls import Graph
from cnnctl.recipe.data_spec import DataSpec, SplitSpec
from cnnctl.recipe.export_spec import ExportSpec, distinct_exports
from cnnctl.recipe.fields import KerasObject, PositiveInt, Section
from cnnctl.recipe.graph import resolve_graph
from cnnctl.recipe.model_spec import BlockSpec, InputSpec, ModelSpec
from cnnctl.recipe.train_spec import LogSpec, TrainSpec, per_output

__all__ = ["BlockSpec", "DataSpec", "InputSpec", "KerasObject", "LogSpec", "ModelSpec", "PositiveInt", "Recipe",
           "SplitSpec", "TrainSpec", "per_output"]


def run_name(value: str) -> str:
    """``value`` if it names a run folder (letters, digits, '.', '_', '-'); ValueError otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", value) or set(value) == {"."}:
        raise ValueError(f"a run name is letters, digits, '.', '_' and '-' (not only dots), got {value!r}")
    return value


class Recipe(Section):
    """A validated recipe. ``problem(path, message)`` locates a key path in the file it came from."""

    name: Annotated[str, AfterValidator(run_name)]
    """Names the run folder, runs/NAME/TIME/: letters, digits, '.', '_' and '-' (`train --name` gives another)."""
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 42
    """Seeds Python, NumPy, TensorFlow and Keras, and the data split."""
    data: DataSpec = Field(default_factory=DataSpec)  # made when used: its source is checked against the registry
    """Where the examples come from (see data)."""
    model: ModelSpec
    """The network (see model)."""
    train: TrainSpec = TrainSpec()
    """How it is trained (see train)."""
    log: LogSpec = LogSpec()
    """What is logged (see log)."""
    export: Annotated[list[ExportSpec], AfterValidator(distinct_exports)] = []
    """Formats written to RUN/export/ after training: savedmodel, keras, tflite, onnx, or {tflite: {quantize: dynamic, float16 or int8}}; each is reloaded by its own runtime and checked against Keras (see docs/export.md)."""  # noqa: E501

    _graph: Graph | None = PrivateAttr(default=None)

    @property
    def graph(self) -> Graph:
        """The model as a flat list of layer calls (``cnnctl.recipe.graph``), resolved once."""
        if self._graph is None:
            self._graph = resolve_graph(self)
        return self._graph
