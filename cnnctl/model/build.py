"""Recipe.model -> keras.Model, and the per-call rows ``cnnctl check`` prints.

The recipe stage (``cnnctl.recipe.graph``) has already expanded blocks and
resolved ``from``/``share`` into a flat list of calls; here each call becomes a
Keras layer call. A plain chain becomes ``keras.Sequential``, anything else a
functional ``keras.Model``, as a Keras user would have written it. The model is
built under the dtype policy of ``train.mixed_precision`` (``cnnctl.model.precision``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import keras

from cnnctl.errors import Problem, RecipeError, first_line
from cnnctl.model.objects import make_layer
from cnnctl.model.precision import is_mixed, policy_scope, resolve_policy
from cnnctl.recipe.graph import Call, Graph
from cnnctl.recipe.limits import MAX_UNROLL, memory_bytes, size_text
from cnnctl.recipe.schema import Recipe


@dataclass
class Built:
    """A model with what was learnt while building it: the layer and output of every call."""

    model: keras.Model
    graph: Graph
    layers: dict[str, keras.layers.Layer]  # call key -> layer (the shared one for a share call)
    tensors: dict[str, Any]  # call key or input name -> symbolic output
    policy: str = "float32"  # the Keras dtype policy it was built with


def build_model(recipe: Recipe) -> keras.Model:
    """The recipe's model, built (its weights exist), seeded by ``recipe.seed``."""
    return build(recipe).model


def build(recipe: Recipe) -> Built:
    """Build under the recipe's dtype policy; the global policy is restored afterwards."""
    policy = resolve_policy(recipe.train.mixed_precision)
    with policy_scope(policy):
        return dataclasses.replace(_build_deferred(recipe, float32_outputs=is_mixed(policy)), policy=policy)


def _build_deferred(recipe: Recipe, *, float32_outputs: bool) -> Built:
    """Build with every weight's allocation deferred, refuse a model whose weights would not fit, then allocate.

    Inside ``keras.StatelessScope(initialize_variables=False)`` Keras creates variables with their shapes but
    no values, so the weights are counted layer by layer (``_Budget``) before any is allocated; they are then
    initialized in creation order, as a plain build does (the weights are equal: tests/recipe/test_recipe_boundary.py).
    """
    pending = _uninitialized()
    before = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False) as scope:
            built = _build(recipe, float32_outputs=float32_outputs, budget=_Budget(recipe))
    except RecipeError as exc:
        del pending[before:]  # never allocated, and never will be: a later StatelessScope would initialize them
        if any("stateless scope" in p.message for p in exc.problems):  # a layer that cannot defer its weights
            return _build(recipe, float32_outputs=float32_outputs, budget=None)
        raise
    except BaseException:
        del pending[before:]
        raise
    created = pending[before:]
    try:
        with keras.StatelessScope():  # on leaving the outermost one, Keras initializes the deferred variables
            pass
    except Exception:  # an initializer that fails on its shape (Identity on a conv kernel): Keras stopped midway
        ours = {id(v) for v in created}
        left = _uninitialized()
        left[:] = [v for v in left if id(v) not in ours]  # else the next build would initialize them again
        return _build(recipe, float32_outputs=float32_outputs, budget=None)  # fails at that layer, located
    for variable in created:  # what a layer assigned while it was built (none of the recipes' layers do)
        value = scope.get_current_value(variable)
        if value is not None:
            variable.assign(value)
    return built


def _uninitialized() -> list:
    """Keras's list of variables created in a StatelessScope and not initialized yet (Keras-internal state)."""
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)


class _Budget:
    """The weights built so far; a layer that takes them past half this machine's memory is refused."""

    def __init__(self, recipe: Recipe):
        self.recipe, self.params, self.seen = recipe, 0, set()
        self.limit = memory_bytes() // 2

    def before(self, call: Call, layer: keras.layers.Layer, given: list) -> None:
        """Layers that allocate more than weights when built: GraphConv's pixel-grid adjacency, unrolled RNNs."""
        shape = tuple(given[0].shape) if given else ()
        if getattr(layer, "adjacency", None) == "grid" and len(shape) == 4 and None not in shape[1:3]:
            nodes = shape[1] * shape[2]
            if 12 * nodes * nodes > self.limit:
                raise RecipeError(self.recipe.problem(call.path, (
                    f"{type(layer).__name__} over the {shape[1]}x{shape[2]} pixel grid builds a {nodes:,} x {nodes:,} "
                    f"adjacency matrix, {size_text(12 * nodes * nodes)} with its normalization: more than half of "
                    f"this machine's {size_text(memory_bytes())}; use it on smaller feature maps{call.context}")))
        rnn = getattr(layer, "forward_layer", layer)
        steps = shape[1] if len(shape) >= 3 else None
        if getattr(rnn, "unroll", False) and steps is not None and steps > MAX_UNROLL:
            raise RecipeError(self.recipe.problem(call.path, (
                f"unroll: true copies the cell once per time step, and the input has {steps:,} steps; unroll at "
                f"most {MAX_UNROLL:,} steps, or leave unroll false{call.context}")))

    def after(self, call: Call, layer: keras.layers.Layer) -> None:
        if call.share is not None or id(layer) in self.seen:
            return
        self.seen.add(id(layer))
        params = sum(math.prod(w.shape) for w in layer.weights)
        self.params += params
        if 4 * self.params > self.limit:
            raise RecipeError(self.recipe.problem(call.path, (
                f"the model's weights pass half of this machine's {size_text(memory_bytes())} of memory here: "
                f"'{layer.name}' ({type(layer).__name__}) has {params:,} parameters ({size_text(4 * params)} as "
                f"float32), the model {self.params:,} so far; make the layer smaller (units, filters, kernel_size, "
                f"the input shape){call.context}")))


def _build(recipe: Recipe, *, float32_outputs: bool, budget: _Budget | None) -> Built:
    keras.utils.set_random_seed(recipe.seed)
    graph = recipe.graph
    layers = _construct_layers(recipe, graph, float32_outputs)
    inputs = _inputs(recipe, graph)
    tensors: dict[str, Any] = dict(inputs)
    if graph.sequential:
        model = keras.Sequential(name=recipe.name)
        model.add(next(iter(inputs.values())))
        for call in graph.calls:
            layer = layers[call.key]
            if budget is not None:
                budget.before(call, layer, [tensors[key] for key in call.inputs])
            try:
                model.add(layer)
            except Exception as exc:  # Keras raises ValueError, TypeError or backend errors here
                raise RecipeError(_shape_problem(recipe, call, layers, tensors, exc)) from None
            tensors[call.key] = layer.output
            if budget is not None:
                budget.after(call, layer)
    else:
        for call in graph.calls:
            given = [tensors[key] for key in call.inputs]
            if budget is not None:
                budget.before(call, layers[call.key], given)
            try:
                tensors[call.key] = layers[call.key](given[0] if len(given) == 1 else given)
            except Exception as exc:  # as above: any complaint of a layer about its inputs
                raise RecipeError(_shape_problem(recipe, call, layers, tensors, exc)) from None
            if budget is not None:
                budget.after(call, layers[call.key])
        outputs = [tensors[key] for key in graph.outputs]
        try:
            model = keras.Model(
                inputs=list(inputs.values()) if len(inputs) > 1 else next(iter(inputs.values())),
                outputs=outputs if len(outputs) > 1 else outputs[0],
                name=recipe.name,
            )
        except Exception as exc:  # e.g. two layers of one name, which the recipe stage could not foresee
            raise RecipeError(recipe.problem(("model",), f"Keras cannot make the model: {first_line(exc)}")) from None
    return Built(model, graph, layers, tensors)


def _inputs(recipe: Recipe, graph: Graph) -> dict[str, Any]:
    out = {}
    for name, spec in graph.inputs.items():
        try:
            out[name] = keras.Input(shape=tuple(spec.shape), dtype=spec.dtype, name=name)
        except Exception as exc:  # e.g. more dimensions than the backend takes
            path = ("model", "input") if recipe.model.input is not None else ("model", "inputs", name)
            raise RecipeError(recipe.problem(path, f"Keras cannot make an input of shape {list(spec.shape)}: "
                                                   f"{first_line(exc)}")) from None
    return out


def _construct_layers(recipe: Recipe, graph: Graph, float32_outputs: bool = False) -> dict[str, keras.layers.Layer]:
    """Every layer object, before any is called: all bad layers are reported at once.

    With ``float32_outputs`` (a mixed policy) the layers that produce the model's
    outputs compute in float32, unless the recipe gives them a dtype.
    """
    calls = {call.key: call for call in graph.calls}
    output_layers = {calls[key].share or key for key in graph.outputs} if float32_outputs else set()
    problems: list[Problem] = []  # (a block named like a layer is refused by the recipe stage)
    layers: dict[str, keras.layers.Layer] = {}
    for call in graph.calls:
        if call.share is not None:
            continue
        args = call.args
        if call.key in output_layers and "dtype" not in args:
            args = {**args, "dtype": "float32"}
        try:
            layers[call.key] = make_layer(call.cls, args, recipe, call.path)
        except RecipeError as exc:
            problems += [dataclasses.replace(p, message=p.message + call.context) for p in exc.problems]
    if problems:
        seen: set = set()
        raise RecipeError([p for p in problems if not ((p.where, p.path) in seen or seen.add((p.where, p.path)))])
    for call in graph.calls:
        if call.share is not None:
            layers[call.key] = layers[call.share]
    return layers


def _shape_problem(recipe: Recipe, call: Call, layers: dict, tensors: dict, exc: Exception) -> Problem:
    """Name the layer that cannot take its input, the layer(s) that gave it, and their shapes."""
    cls = type(layers[call.key]).__name__
    sources = [f"{_label(key, layers)}, of shape {shape_text(shape_of(tensors[key]))}" for key in call.inputs]
    reason = first_line(exc).split("is incompatible with the layer: ")[-1].split(" Full shape received")[0]
    if len(sources) == 1:
        message = f"{cls} cannot take the output of {sources[0]}: {reason}"
    else:
        message = f"{cls} cannot combine {' and '.join(sources)}: {reason}"
    return recipe.problem(call.path, message + call.context)


def _label(key: str, layers: dict) -> str:
    if key not in layers:
        return f"input '{key}'"
    layer = layers[key]
    return f"'{layer.name}' ({type(layer).__name__})"


def shape_of(tensor: Any) -> tuple:
    """The shape of a symbolic output (the first, for a layer that returns several)."""
    first = tensor[0] if isinstance(tensor, (list, tuple)) else tensor
    return tuple(first.shape)


def shape_text(shape: tuple) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


@dataclass(frozen=True)
class LayerRow:
    """One call of one layer, as ``cnnctl check`` shows it."""

    name: str
    cls: str
    output_shape: list  # without the batch dimension
    params: int  # 0 for a call that reuses a layer listed earlier
    trainable_params: int
    inputs: list[str]  # names of the rows (or model inputs) it reads
    shares: str | None  # the name of the layer whose weights it reuses


def summarize(built: Built) -> list[LayerRow]:
    """One row per layer call, in graph order."""
    rows, names = [], {name: name for name in built.graph.inputs}
    for call in built.graph.calls:
        layer = built.layers[call.key]
        name = layer.name if call.share is None else call.key
        names[call.key] = name
        shared = call.share is not None
        trainable = 0 if shared else sum(math.prod(w.shape) for w in layer.trainable_weights)
        rows.append(LayerRow(
            name=name,
            cls=type(layer).__name__,
            output_shape=list(shape_of(built.tensors[call.key]))[1:],
            params=0 if shared else layer.count_params(),
            trainable_params=trainable,
            inputs=[names[key] for key in call.inputs],
            shares=layer.name if shared else None,
        ))
    return rows
