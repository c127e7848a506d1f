"""The recipe schema: every section, its keys, their types and defaults.

The defaults here are documentation: ``cnnctl recipes`` and docs/recipe.md show
them. Validation is strict (``1`` is not ``true``, ``"3"`` is not ``3``) and
unknown keys are errors, so a typo never passes silently. Layer arguments are
checked later against the Keras class itself (``cnnctl.model.layers``), since
that needs Keras.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from cnnctl.recipe.data_spec import DataSpec, SplitSpec
from cnnctl.recipe.export_spec import FORMATS, ExportSpec, distinct_exports
from cnnctl.recipe.fields import KerasObject, LayerSpec, PositiveInt, Section
from cnnctl.recipe.train_spec import LogSpec, TrainSpec, per_output
from cnnctl.recipe.yaml_loader import Located

__all__ = ["BlockSpec", "DataSpec", "InputSpec", "KerasObject", "LogSpec", "ModelSpec", "PositiveInt", "Recipe",
           "SplitSpec", "TrainSpec", "per_output"]

EXPORT_FORMATS = FORMATS  # savedmodel, keras, tflite, onnx




def _run_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", value) or set(value) == {"."}:
        raise ValueError(f"a run name is letters, digits, '.', '_' and '-' (not only dots), got {value!r}")
    return value


Shape = Annotated[list[Annotated[int, Field(gt=0)] | None], Field(min_length=1)]
DTYPES = ("float32", "float16", "bfloat16", "float64", "int32", "int64", "uint8", "bool")


class InputSpec(Section):
    """A model input: its shape without the batch dimension (``null`` for a variable length)."""

    shape: Shape
    """One example's shape, without the batch dimension; null for a variable length."""
    dtype: Literal[DTYPES] = "float32"
    """The input's dtype (int32 for token ids fed to Embedding)."""


class BlockSpec(Section):
    """A reusable piece of network, written once and used by name like a layer."""

    params: dict[str, Any] = {}
    """Parameter names and defaults; the default `required` means the user must give it."""
    inputs: Annotated[list[str], Field(min_length=1)] = ["input"]
    """Names its graph reads its inputs by."""
    layers: Annotated[list[LayerSpec], Field(min_length=1)] | None = None
    """A chain of layers and blocks (or give graph)."""
    graph: Annotated[dict[str, Any], Field(min_length=1)] | None = None
    """Named nodes, as in model.graph (or give layers)."""
    output: str | None = None
    """The graph node whose result the block returns (default: the last)."""

    @model_validator(mode="after")
    def _one_body(self) -> BlockSpec:
        if (self.layers is None) == (self.graph is None):
            raise ValueError("a block has either layers (a chain) or graph (named nodes), not both or neither")
        if self.output is not None and self.graph is None:
            raise ValueError("output names a node of the block's graph; a chain of layers ends at its last layer")
        if self.layers is not None and len(self.inputs) != 1:
            raise ValueError("a chain of layers takes one input; use graph for a block with several inputs")
        return self


class ModelSpec(Section):
    """A chain of ``layers`` (keras.Sequential) or a ``graph`` of named nodes (keras.Model)."""

    input: Shape | None = None
    """The shape of one example, e.g. [8, 8, 1]; the input is named image (or give inputs)."""
    inputs: Annotated[dict[str, Shape | InputSpec], Field(min_length=1)] | None = None
    """Several named inputs: {name: shape} or {name: {shape, dtype}} (or give input)."""
    layers: Annotated[list[LayerSpec], Field(min_length=1)] | None = None
    """A chain of Keras layers and blocks: keras.Sequential (or give graph)."""
    graph: Annotated[dict[str, Any], Field(min_length=1)] | None = None
    """Named nodes {name: {Layer: {args}, from: node(s)}}: a functional keras.Model (or give layers)."""
    outputs: Annotated[list[str], Field(min_length=1)] | None = None
    """The graph nodes the model returns (default: the last node)."""
    blocks: dict[str, BlockSpec] = {}
    """Reusable pieces of network, used by name like layers (see Blocks)."""

    @model_validator(mode="after")
    def _one_of_each(self) -> ModelSpec:
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give the model's input shape as input: [h, w, c], or several named inputs as "
                             "inputs: {name: [h, w, c], ...} (one of the two)")
        if (self.layers is None) == (self.graph is None):
            raise ValueError("give the network as layers (a chain) or as graph (named nodes), one of the two")
        if self.layers is not None and self.inputs is not None and len(self.inputs) > 1:
            raise ValueError("a chain of layers takes one input; use graph for several inputs")
        if self.outputs is not None and self.graph is None:
            raise ValueError("outputs names nodes of a graph; a chain of layers ends at its last layer")
        return self

    def input_specs(self) -> dict[str, InputSpec]:
        """Every model input by name (a lone ``input`` is named ``image``)."""
        if self.input is not None:
            return {"image": InputSpec(shape=self.input)}
        return {name: spec if isinstance(spec, InputSpec) else InputSpec(shape=spec)
                for name, spec in (self.inputs or {}).items()}


class Recipe(Section):
    """A validated recipe. ``where(path)`` tells where a value came from."""

    name: Annotated[str, AfterValidator(_run_name)]
    """Names the run folder, runs/NAME/TIME/ (default: the recipe file's name)."""
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 42
    """Seeds Python, NumPy, TensorFlow and Keras, and the data split."""
    data: DataSpec = DataSpec()
    """Where the examples come from (see data)."""
    model: ModelSpec
    """The network (see model)."""
    train: TrainSpec = TrainSpec()
    """How it is trained (see train)."""
    log: LogSpec = LogSpec()
    """What is logged (see log)."""
    export: Annotated[list[ExportSpec], AfterValidator(distinct_exports)] = []
    """Formats written to RUN/export/ after training: savedmodel, keras, tflite, onnx, or {tflite: {quantize: dynamic, float16 or int8}}; each is reloaded by its own runtime and checked against Keras (see docs/export.md)."""  # noqa: E501

    _located: Located | None = PrivateAttr(default=None)
    _graph: Any = PrivateAttr(default=None)

    @property
    def graph(self):
        """The model as a flat list of layer calls (``cnnctl.recipe.graph.Graph``)."""
        if self._graph is None:
            from cnnctl.recipe.graph import resolve_graph

            self._graph = resolve_graph(self)
        return self._graph

    def boolean_problem(self, path: tuple, value: bool, expected: str):
        """``path: no`` where ``expected`` (a string, a name) was wanted: says how YAML read it."""
        from cnnctl.recipe.yaml_loader import boolean_message, key_name

        word = self._located.words.get(tuple(path)) if self._located is not None else None
        return self.problem(path, boolean_message(value, key_name(path), expected, word))

    def problem(self, path: tuple, message: str, *, key: bool = False):
        """A Problem located at ``path`` in the recipe file (or the --set that gave it)."""
        from cnnctl.errors import Problem
        from cnnctl.recipe.yaml_loader import format_path

        if self._located is None:
            return Problem("", format_path(path), message)
        return self._located.problem(path, message, key=key)
