"""``model:`` -> a flat list of layer calls: blocks expanded, ``from`` resolved, sharing wired.

This is the recipe's structure, checked without TensorFlow: unknown nodes,
nodes read before they are defined, blocks that use themselves, missing or
unknown block parameters, ``${...}`` mistakes and clashing layer names are all
found here, each at its place in the file. ``cnnctl.model.build`` then only has to
turn each ``Call`` into a Keras layer call.

Naming: a graph node's layer is named after its key; a layer inside a block
instance is named ``<instance>_<node>`` (graph bodies) or ``<instance>_<class>``
(chain bodies); ``repeat: n`` appends ``_1`` ... ``_n``. Layers of a top-level
``layers:`` chain keep Keras's own automatic names unless they set ``name``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Protocol

from cnnctl.errors import Locator, Problem, RecipeError, did_you_mean
from cnnctl.recipe.calls import Call, Graph, dedupe, snake, split_spec
from cnnctl.recipe.expr import substitute
from cnnctl.recipe.fields import SERIALIZED_FORM, SERIALIZED_KEYS
from cnnctl.recipe.keras_names import layer_names
from cnnctl.recipe.limits import MAX_CALLS, MAX_REPEAT
from cnnctl.recipe.model_spec import BlockSpec, ModelSpec
from cnnctl.recipe.train_spec import TrainSpec, per_output
from cnnctl.recipe.yaml_loader import format_path

__all__ = ["Call", "Graph", "resolve_graph", "snake", "split_spec"]  # Call, Graph, ...: see cnnctl.recipe.calls


class Recipe(Locator, Protocol):
    """What the resolver reads of a recipe: a ``cnnctl.recipe.schema.Recipe`` (whose ``graph`` calls this)."""

    model: ModelSpec
    train: TrainSpec

NODE_KEYS = ("from", "share")
REQUIRED = "required"  # a block parameter without a default
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
FAILED = "\0failed"  # the result of a node that has been reported: nodes reading it stay quiet


@dataclass(frozen=True)
class _Scope:
    """Where a piece of the recipe is being expanded: inside which blocks, with which parameters."""

    params: dict = dataclasses.field(default_factory=dict)  # the block's parameter values
    context: str = ""  # appended to messages: which block, used where
    stack: tuple = ()  # the blocks being expanded, outermost first (to catch a block using itself)
    prefix: str | None = None  # the block instance's name, prefixed to its layers' names


TOP = _Scope()


def resolve_graph(recipe: Recipe) -> Graph:
    """The model section as calls; raises ``RecipeError`` listing every structural problem."""
    return _Resolver(recipe).resolve()


class _Resolver:
    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.blocks: dict[str, BlockSpec] = recipe.model.blocks
        self.calls: list[Call] = []
        self.layer_names: dict[str, tuple] = {}
        self.problems: list[Problem] = []
        self.instances: dict[str, int] = {}
        self.used_blocks = False
        # per node result: the calls the node made (self.calls[start:end]) and the inputs it read
        self.spans: dict[str, tuple[int, int, tuple[str, ...]]] = {}

    def resolve(self) -> Graph:
        model = self.recipe.model
        for block in sorted(set(self.blocks) & layer_names()):  # first: the uses of the block would fail confusingly
            self._problem(("model", "blocks", block), f"block '{block}' has the name of a Keras layer; rename it",
                          key=True)
        if self.problems:
            raise RecipeError(dedupe(self.problems))
        inputs = model.input_specs()
        for name in inputs:
            self.layer_names[name] = ("model", "input" if model.input is not None else "inputs")
        if model.layers is not None:
            (only,) = inputs
            last = self._chain(model.layers, only, ("model", "layers"), TOP)
            outputs, names = (last,), ("output",)
        else:
            scope = self._graph(model.graph, {n: n for n in inputs}, ("model", "graph"), TOP)
            names = tuple(model.outputs or [list(model.graph)[-1]])
            outputs = []
            for i, name in enumerate(names):
                if scope.get(name) == FAILED:
                    continue
                if name not in scope or name in inputs:
                    known = [n for n in scope if n not in inputs]
                    self._problem(("model", "outputs", i), f"no node named '{name}'{did_you_mean(name, known)}")
                else:
                    outputs.append(scope[name])
            outputs = tuple(outputs)
        self._check_per_output_train(names)
        if self.problems:
            raise RecipeError(dedupe(self.problems))
        sequential = model.layers is not None and not self.used_blocks and model.input is not None
        return Graph(inputs, tuple(self.calls), outputs, names, sequential)

    # -- chains and graphs -------------------------------------------------------------
    def _chain(self, specs: list, first: str, path: tuple, scope: _Scope) -> str:
        current = first
        seen: dict[str, int] = {}
        for i, spec in enumerate(specs):
            cls, args = split_spec(spec)
            if scope.prefix is not None:  # inside a block: name after the instance and the class
                given = substitute(args.get("name"), scope.params, (*path, i, cls, "name"), [])
                base = f"{scope.prefix}_{given or snake(cls)}"
                seen[base] = seen.get(base, 0) + 1
                name = base if seen[base] == 1 else f"{base}_{seen[base]}"
            elif cls in self.blocks or args.get("name") is not None:
                name = None
            else:  # as Keras names them in a fresh session: conv2d, conv2d_1, ...
                name = self._auto_name(snake(cls))
            current = self._apply(cls, args, [current], (*path, i), scope, name=name)
        return current

    def _graph(self, nodes: dict, known: dict[str, str], path: tuple, at: _Scope) -> dict[str, str]:
        """Resolve named nodes in order; returns every name in reach (inputs and nodes) -> its key."""
        scope = dict(known)
        context, prefix = at.context, at.prefix
        entries = list(scope)
        previous = scope[entries[0]] if len(entries) == 1 else None
        later = set(nodes)
        last = None
        for node, spec in nodes.items():
            if last is not None:
                previous = scope.get(last, FAILED)  # the node above, resolved or not
            last = node
            later.discard(node)
            npath = (*path, node)
            if not isinstance(node, str) or not _NAME.match(node):
                self._problem(npath, f"node name {node!r} must start with a letter or _ and use only letters, "
                              "digits, _ . -", context, key=True)
                continue
            if node in entries:
                self._problem(npath, f"node '{node}' has the name of an input; give it another", context, key=True)
                continue
            scope[node] = FAILED  # until it resolves: whatever reads it has been told already
            parsed = self._parse_node(spec, npath, context)
            if parsed is None:
                continue
            cls, args, sources, share = parsed
            if sources is None:
                if previous == FAILED:
                    continue
                if previous is None:
                    self._problem(npath, "say which node it reads with from: NAME (it is the first node and "
                                  f"there are several inputs: {', '.join(entries)})", context)
                    continue
                inputs = [previous]
            else:
                inputs = []
                for j, source in enumerate(sources):
                    where = (*npath, "from") if isinstance(spec.get("from"), str) else (*npath, "from", j)
                    if scope.get(source) == FAILED:
                        continue
                    if source in scope:
                        inputs.append(scope[source])
                    elif source in later:
                        self._problem(where, f"'{source}' is defined further down; a node can only read the "
                                      "inputs and the nodes above it", context)
                    else:
                        hint = did_you_mean(source, scope)
                        if source == "input" and not hint and prefix is None:
                            hint = f" (the model's input is named '{entries[0]}'; 'input' is a block's input)"
                        self._problem(where, f"no node or input named '{source}'{hint}", context)
                if len(inputs) != len(sources):
                    continue
            name = node if prefix is None else f"{prefix}_{node}"
            start = len(self.calls)
            if share is not None:
                result = self._share(share, scope, inputs, npath, at, name=name)
            else:
                if "name" in args:
                    self._problem((*npath, cls, "name"), "a node's layer is named by its key; remove name",
                                  context, key=True)
                    continue
                result = self._apply(cls, args, inputs, npath, at, name=name)
            if result is not None:
                scope[node] = result
                self.spans[result] = (start, len(self.calls), tuple(inputs))
        return scope

    def _parse_node(self, spec: Any, path: tuple, context: str):
        if isinstance(spec, str) and spec:
            return spec, {}, None, None
        if isinstance(spec, bool):
            return self._boolean(path, spec, "a layer or block such as Flatten or {Conv2D: {filters: 8}}", context)
        if not isinstance(spec, dict):
            self._problem(path, f"a node is a layer or block such as {{Conv2D: {{filters: 8}}, from: x}}, got "
                          f"{spec!r}", context)
            return None
        sources = spec.get("from")
        if sources is not None:
            if isinstance(sources, str):
                sources = [sources]
            elif isinstance(sources, bool):
                return self._boolean((*path, "from"), sources, "a node name", context)
            elif isinstance(sources, list) and any(isinstance(s, bool) for s in sources):
                i = next(i for i, s in enumerate(sources) if isinstance(s, bool))
                return self._boolean((*path, "from", i), sources[i], "a node name", context)
            elif not (isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)):
                self._problem((*path, "from"), f"from is a node name or a list of names, got {sources!r}", context)
                return None
        rest = [k for k in spec if k not in NODE_KEYS]
        share = spec.get("share")
        if isinstance(share, bool):
            return self._boolean((*path, "share"), share, "a node name", context)
        if share is not None and not (isinstance(share, str) and share):
            self._problem((*path, "share"), f"share is the name of a node above, got {share!r}", context)
            return None
        if share is not None:
            if rest:
                self._problem((*path, rest[0]), f"a node that shares '{share}' reuses its layers as they are; "
                              f"remove '{rest[0]}'", context, key=True)
                return None
            return None, {}, sources, share
        if len(rest) != 1:
            what = "no layer" if not rest else f"{len(rest)} layers ({', '.join(map(str, rest))})"
            self._problem(path, f"a node holds one layer or block (and optionally from/share), got {what}", context)
            return None
        (cls,) = rest
        args = spec[cls]
        if args is not None and not isinstance(args, dict):
            self._problem((*path, cls), f"the arguments of '{cls}' must be a mapping, got {args!r}", context)
            return None
        return cls, dict(args or {}), sources, None

    # -- one layer or block use -------------------------------------------------------------
    def _apply(self, cls: str, args: dict, inputs: list[str], path: tuple, scope: _Scope, *,
               name: str | None) -> str | None:
        context = scope.context
        found: list[tuple[tuple, str]] = []
        args = substitute(args, scope.params, (*path, cls), found)
        for where, message in found:
            self._problem(where, message, context)
        repeat = args.pop("repeat", 1)
        if not (isinstance(repeat, int) and not isinstance(repeat, bool) and repeat > 0):
            self._problem((*path, cls, "repeat"), f"repeat must be a positive integer, got {repeat!r}", context)
            return None
        if repeat > MAX_REPEAT:
            self._problem((*path, cls, "repeat"), f"repeat is at most {MAX_REPEAT:,}, got {repeat:,}", context)
            return None
        given = args.get("name")
        if isinstance(given, bool):
            return self._boolean((*path, cls, "name"), given, "a string", context)
        if given is not None and not (isinstance(given, str) and given):
            self._problem((*path, cls, "name"), f"a layer's name is a string, got {given!r}", context)
            return None
        if cls in self.blocks:
            return self._blocks(cls, args, inputs, path, scope, name=name, repeat=repeat)
        if name is None and given is not None:
            name = given
        current = inputs
        for r in range(1, repeat + 1):
            layer_name = name if name is None or repeat == 1 else f"{name}_{r}"
            if layer_name is not None:
                args = {**args, "name": layer_name}
                if self._claim(layer_name, (*path, cls), context) is False:
                    return None
            key = layer_name or f"{snake(cls)}#{len(self.calls)}"
            self._add(Call(key, cls, args, tuple(current), layer_name, None, path, context))
            current = [key]
        return current[0]

    def _blocks(self, block: str, args: dict, inputs: list[str], path: tuple, scope: _Scope, *,
                name: str | None, repeat: int) -> str | None:
        self.used_blocks = True
        context, stack = scope.context, scope.stack
        if block in stack:
            chain = " -> ".join((*stack, block))
            self._problem((*path, block), f"block '{block}' uses itself ({chain})", context)
            return None
        spec = self.blocks[block]
        params = self._block_params(block, spec, args, path, context)
        if params is None:
            return None
        if len(inputs) != len(spec.inputs):
            self._problem(path, f"block '{block}' takes {len(spec.inputs)} input(s) ({', '.join(spec.inputs)}), "
                          f"given {len(inputs)}", context)
            return None
        if name is None:
            name = args.get("name")
        if name is None:
            self.instances[block] = self.instances.get(block, 0) + 1
            name = f"{block}_{self.instances[block]}"
        current = inputs
        for r in range(1, repeat + 1):
            instance = name if repeat == 1 else f"{name}_{r}"
            inner = _Scope(params, f" (in block '{block}' used at {format_path(path)})" + context,
                           (*stack, block), instance)
            body = ("model", "blocks", block)
            if spec.layers is not None:
                out = self._chain(spec.layers, current[0], (*body, "layers"), inner)
            else:
                names = self._graph(spec.graph, dict(zip(spec.inputs, current, strict=True)), (*body, "graph"),
                                    inner)
                last = spec.output or list(spec.graph)[-1]
                if last not in names:
                    self._problem((*body, "output"), f"no node named '{last}' in block '{block}'"
                                  f"{did_you_mean(last, spec.graph)}")
                    return None
                out = names[last]
            if out is None or out == FAILED:
                return None
            current = [out]
        return current[0]

    def _block_params(self, block: str, spec: BlockSpec, args: dict, path: tuple, context: str) -> dict | None:
        args = {k: v for k, v in args.items() if k != "name"}
        ok = True
        for key in args:
            if key not in spec.params:
                known = ", ".join(spec.params) or "none"
                self._problem((*path, block, key), f"block '{block}' has no parameter '{key}'"
                              f"{did_you_mean(key, spec.params)} (parameters: {known})", context, key=True)
                ok = False
        for key, default in spec.params.items():
            if default == REQUIRED and key not in args:
                self._problem((*path, block), f"block '{block}' needs a value for its parameter '{key}'", context)
                ok = False
        return {**spec.params, **args} if ok else None

    # -- shared layers -------------------------------------------------------------------------
    def _share(self, target: str, scope: dict, inputs: list[str], path: tuple, at: _Scope, *,
               name: str) -> str | None:
        context = at.context
        if scope.get(target) == FAILED:
            return None
        if target not in scope or scope[target] not in self.spans:
            known = [n for n in scope if scope[n] in self.spans]
            self._problem((*path, "share"), f"no node named '{target}' to share{did_you_mean(target, known)}",
                          context)
            return None
        start, end, old_inputs = self.spans[scope[target]]
        if len(inputs) != len(old_inputs):
            self._problem(path, f"'{target}' reads {len(old_inputs)} input(s); this node gives it {len(inputs)}",
                          context)
            return None
        renamed = dict(zip(old_inputs, inputs, strict=True))
        copies = self.calls[start:end]
        for k, call in enumerate(copies, 1):
            key = name if len(copies) == 1 else f"{name}_{k}"
            if self._claim(key, path, context) is False:
                return None
            renamed[call.key] = key
            self._add(Call(key, None, {}, tuple(renamed.get(i, i) for i in call.inputs), None,
                           call.share or call.key, path, context))
        return renamed[copies[-1].key]

    def _add(self, call: Call) -> None:
        """One more layer call; blocks of blocks, each repeated, multiply: past ``MAX_CALLS``, stop at once."""
        if len(self.calls) >= MAX_CALLS:
            problem = self.recipe.problem(call.path, (
                f"the model expands to more than {MAX_CALLS:,} layer calls (blocks that use blocks, each repeated, "
                f"multiply): make repeat smaller, or the blocks shallower{call.context}"))
            raise RecipeError(problem)
        self.calls.append(call)

    def _auto_name(self, base: str) -> str:
        count = self.instances.get(base, 0)
        while True:
            name = base if count == 0 else f"{base}_{count}"
            count += 1
            if name not in self.layer_names:
                self.instances[base] = count
                return name

    # -- checks and problems ---------------------------------------------------------------------------
    def _claim(self, layer_name: str, path: tuple, context: str) -> bool:
        if layer_name in self.layer_names:
            first = self.recipe.problem(self.layer_names[layer_name], "").where
            self._problem(path, f"the layer name '{layer_name}' is already used (at {first}); names must be unique",
                          context)
            return False
        self.layer_names[layer_name] = path
        return True

    def _check_per_output_train(self, outputs: tuple[str, ...]) -> None:
        train = self.recipe.train
        for key, value in (("loss", train.loss), ("loss_weights", train.loss_weights), ("metrics", train.metrics)):
            if not (per_output(value, outputs) if key == "loss" else isinstance(value, dict)):
                continue
            if set(value) & set(SERIALIZED_KEYS) - set(outputs):
                self._problem(("train", key), f"{{{', '.join(map(str, value))}}} {SERIALIZED_FORM}")
                continue
            for name in value:
                if name not in outputs:
                    self._problem(("train", key, name), f"the model has no output named '{name}'"
                                  f"{did_you_mean(name, outputs)} (outputs: {', '.join(outputs)})", key=True)

    def _boolean(self, path: tuple, value: bool, expected: str, context: str) -> None:
        """An unquoted yes/no/on/off where a name was meant (``from: no``): a problem; None, for ``return``."""
        problem = self.recipe.boolean_problem(path, value, expected)
        self.problems.append(dataclasses.replace(problem, message=problem.message + context))

    def _problem(self, path: tuple, message: str, context: str = "", key: bool = False) -> None:
        problem = self.recipe.problem(path, message, key=key)
        self.problems.append(dataclasses.replace(problem, message=problem.message + context))
