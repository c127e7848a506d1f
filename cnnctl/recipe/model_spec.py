"""The ``model:`` section of a recipe: inputs, a chain of ``layers`` or a ``graph`` of named nodes, and ``blocks``.

Only the section's shape is checked here; ``cnnctl.recipe.graph`` resolves its
structure (blocks, ``from``, ``share``) and ``cnnctl.model`` checks each layer's
arguments against its Keras class.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from cnnctl.recipe.fields import LayerSpec, Section

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
