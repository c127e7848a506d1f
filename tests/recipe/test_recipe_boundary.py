"""The recipe boundary through the real `cnnctl check` (in-process): what YAML makes of a word, and what a
recipe can never make cnnctl do (build Python objects, import a module, run code).

Each refusal is exit 2 with one located ``error:`` line and no traceback (``tests.conftest.invoke_fails``).
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import invoke, invoke_fails

HEAD = "Dense: {units: 10, activation: softmax}"


def chain(*layers: str, after: str = "") -> str:
    """A digits recipe whose layers start on line 5."""
    return "name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n" + "".join(f"    - {x}\n" for x in layers) + after


OK = chain("Flatten", HEAD)
RULE = "YAML reads an unquoted yes/no/on/off as a boolean"


def error_of(write_recipe, text: str, *sets: str) -> str:
    """The one error line `cnnctl check` gives for ``text`` (file name replaced by recipe.yaml)."""
    path = write_recipe(text)
    stderr = invoke_fails("check", str(path), *(a for s in sets for a in ("--set", s)))
    (line,) = [x for x in stderr.splitlines() if x.startswith("error: ")]
    return line.replace(str(path), "recipe.yaml")


# -- 1. a YAML boolean where a string is expected ------------------------------------------------------
BOOLEANS = {
    "padding_no": (
        chain("Conv2D: {filters: 8, kernel_size: 3, padding: no}", "Flatten", HEAD), (),
        "recipe.yaml:5:53: model.layers[0].Conv2D.padding: got the boolean false, but padding is a string ('valid' "
        f"or 'same'); {RULE}: write 'no' in quotes if you meant the word"),
    "conv1d_padding_off": (
        chain("Conv1D: {filters: 8, kernel_size: 3, padding: off}", "Flatten", HEAD).replace("[8, 8, 1]", "[8, 8]"),
        (), "model.layers[0].Conv1D.padding: got the boolean false, but padding is a string ('valid', 'same' or "
            f"'causal'); {RULE}: write 'off' in quotes"),
    "padding_set": (
        chain("Conv2D: {filters: 8, kernel_size: 3}", "Flatten", HEAD), ("model.layers[0].Conv2D.padding=No",),
        "--set model.layers[0].Conv2D.padding=No: model.layers[0].Conv2D.padding: got the boolean false, but "
        "padding is a string ('valid' or 'same'); " + RULE + ": write 'No' in quotes"),
    "padding_in_a_block": (
        "name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n    conv:\n      params: {pad: valid}\n"
        "      layers: [{Conv2D: {filters: 4, kernel_size: 3, padding: $pad}}]\n"
        "  layers:\n    - conv: {pad: off}\n    - Flatten\n", (),
        "model.blocks.conv.layers[0].Conv2D.padding: got the boolean false, but padding is a string ('valid' or "
        f"'same'); {RULE}: quote the word if you meant one (in block 'conv' used at model.layers[0])"),
    "activation": (
        chain("Conv2D: {filters: 8, kernel_size: 3, activation: on}", "Flatten", HEAD), (),
        "recipe.yaml:5:56: model.layers[0].Conv2D.activation: got the boolean true, but activation is a Keras "
        f"activation such as relu; {RULE}: write 'on' in quotes"),
    "data_format": (
        chain("Conv2D: {filters: 8, kernel_size: 3, data_format: yes}", "Flatten", HEAD), (),
        "data_format is a string ('channels_last' or 'channels_first')"),
    "initializer": (
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_initializer: no}", "Flatten", HEAD), (),
        "model.layers[0].Conv2D.kernel_initializer: got the boolean false, but kernel_initializer is a Keras "
        f"initializer name or {{Class: {{arguments}}}}; {RULE}"),
    "regularizer": (
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_regularizer: off}", "Flatten", HEAD), (),
        "kernel_regularizer is a Keras regularizer name or {Class: {arguments}} (or null for none)"),
    "rate_number": (
        chain("Flatten", "Dropout: {rate: no}", HEAD), (),
        "recipe.yaml:6:23: model.layers[1].Dropout.rate: got the boolean false, but rate is a number; " + RULE
        + " and Keras would take it as 0: write the number"),
    "units_number": (
        chain("Flatten", "Dense: {units: yes}"), (), "units is a number; " + RULE + " and Keras would take it as 1"),
    "loss_reduction": (
        chain("Flatten", HEAD, after="train:\n  loss: {SparseCategoricalCrossentropy: {reduction: off}}\n"), (),
        "train.loss.SparseCategoricalCrossentropy.reduction: got the boolean false, but reduction is a string "
        "(default 'sum_over_batch_size')"),
    "callback_monitor": (
        chain("Flatten", HEAD, after="train:\n  callbacks: [{EarlyStopping: {monitor: no}}]\n"), (),
        "train.callbacks[0].EarlyStopping.monitor"),
    # the schema's own string fields
    "name": (OK.replace("name: t", "name: no"), (),
             f"recipe.yaml:1:7: name: got the boolean false, but name is a string; {RULE}: write 'no' in quotes"),
    "data_source": (OK + "data: {source: off}\n", (), "data.source: got the boolean false, but source is a string"),
    "data_path_union": (OK + "data: {source: image_dir, path: no}\n", (),
                        "data.path: got the boolean false, but path is a string (or null for none)"),
    "monitor": (OK + "train: {monitor: no}\n", (),
                "train.monitor: got the boolean false, but monitor is a string (or null for none); " + RULE),
    "mode_literal": (OK + "train: {mode: off}\n", (),
                     "recipe.yaml:7:15: train.mode: got the boolean false, but mode is one of 'auto', 'min' or 'max'"),
    "mixed_precision_on": (OK + "train: {mixed_precision: on}\n", (),
                           "train.mixed_precision: got the boolean true, but mixed_precision is one of 'auto', "
                           "'off', 'float16' or 'bfloat16'; " + RULE + ": write 'on' in quotes"),
    "class_name": (OK + "data: {class_names: [a, b, c, d, e, f, g, h, i, 'no']}\n", ("data.class_names[9]=no",),
                   "data.class_names[9]: got the boolean false, but class_names[9] is a string"),
    "optimizer": (OK + "train: {optimizer: no}\n", (),
                  "train.optimizer: got the boolean false, but optimizer is a Keras name such as adam, or "
                  "{Class: {arguments}}; " + RULE),
    "metric_in_a_list": (OK + "train: {metrics: [accuracy, yes]}\n", (),
                         "recipe.yaml:7:29: train.metrics[1]: got the boolean true, but metrics[1] is a Keras name"),
    "layer": (chain("Flatten", "no", HEAD), (),
              "recipe.yaml:6:7: model.layers[1]: got the boolean false, but layers[1] is a Keras layer such as "
              "Flatten"),
    "augmentation": (OK + "data: {augment: [off]}\n", (), "data.augment[0]: got the boolean false"),
    "graph_output": ("name: t\nmodel:\n  input: [8, 8, 1]\n  graph:\n    no: Flatten\n  outputs: [no]\n", (),
                     "recipe.yaml:6:13: model.outputs[0]: got the boolean false, but outputs[0] is a string; " + RULE),
    "graph_from": ("name: t\nmodel:\n  input: [8, 8, 1]\n  graph:\n    no: Flatten\n"
                   "    d: {Dense: {units: 3}, from: no}\n", (),
                   "recipe.yaml:6:34: model.graph.d.from: got the boolean false, but from is a node name; " + RULE
                   + ": write 'no' in quotes"),
    "graph_from_list": ("name: t\nmodel:\n  inputs: {a: [3], b: [3]}\n  graph:\n"
                        "    c: {Concatenate: {}, from: [a, off]}\n", (),
                        "model.graph.c.from[1]: got the boolean false, but from[1] is a node name"),
    "graph_share": ("name: t\nmodel:\n  inputs: {a: [3], b: [3]}\n  graph:\n    d: {Dense: {units: 3}, from: a}\n"
                    "    e: {share: yes, from: b}\n", (),
                    "model.graph.e.share: got the boolean true, but share is a node"),
    "graph_node": ("name: t\nmodel:\n  input: [8, 8, 1]\n  graph:\n    a: Flatten\n    b: off\n", (),
                   "recipe.yaml:6:8: model.graph.b: got the boolean false, but b is a layer or block"),
}


@pytest.mark.parametrize(("text", "sets", "expected"), BOOLEANS.values(), ids=BOOLEANS)
def test_a_yaml_boolean_where_a_string_is_expected(write_recipe, text, sets, expected):
    line = error_of(write_recipe, text, *sets)
    assert expected in line, line
    assert line.startswith("error: recipe.yaml:" if not sets else f"error: --set {sets[0]}: "), line


@pytest.mark.parametrize("text", [
    chain("Flatten", HEAD, after="train:\n  mixed_precision: off\n  epochs: 1\n"),  # off is taken as meant
    chain("Conv2D: {filters: 8, kernel_size: 3, use_bias: no}", "Flatten", HEAD),  # a genuine boolean
    chain("LSTM: {units: 4, use_cudnn: off, unroll: yes}", HEAD).replace("[8, 8, 1]", "[8, 8]"),  # "auto" or a bool
    chain("Flatten", HEAD, after="log: {tensorboard: no}\ndata: {shuffle: off}\n"),
    chain("Flatten", HEAD).replace("name: t", "name: 'no'"),  # quoted: the word
])
def test_booleans_meant_as_booleans_still_pass(write_recipe, text):
    assert "params:" in invoke("check", str(write_recipe(text)))  # exit 0 (invoke asserts it) and the layer table


def test_boolean_keys_are_names(write_recipe):
    text = ("name: t\nmodel:\n  input: [8, 8, 1]\n  graph:\n    no: Flatten\n"
            "    yes: {Dense: {units: 10}, from: 'no'}\n  outputs: ['yes']\n")
    report = invoke("check", str(write_recipe(text)), "--json")
    assert [layer["name"] for layer in report["layers"]] == ["no", "yes"]


# -- 2. numbers, duplicate keys, tags that build Python objects --------------------------------------------
def test_exponent_numbers_are_numbers(write_recipe):
    text = chain("Flatten", HEAD, after="train:\n  optimizer: {Adam: {learning_rate: 1e-3}}\n")
    invoke("check", str(write_recipe(text)))
    from cnnctl.recipe import load_recipe

    assert load_recipe(str(write_recipe(text))).train.optimizer == {"Adam": {"learning_rate": 0.001}}


def test_a_duplicate_key_names_both_lines(write_recipe):
    line = error_of(write_recipe, chain("Flatten", HEAD, after="train:\n  epochs: 3\n  batch: 1\n  epochs: 5\n"))
    assert line == ("error: recipe.yaml:10:3: train.epochs: duplicate key 'epochs' (first given at line 8); YAML "
                    "would keep only the last value, so give it once")


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {canary}']",
    "!!python/object/apply:os.system {args: ['touch {canary}']}",
    "!!python/object/new:os.system ['touch {canary}']",
    "!!python/object:os.system {args: 'touch {canary}'}",
    "!!python/name:os.system",
    "!!python/module:os",
])
def test_python_object_tags_are_refused_and_run_nothing(write_recipe, tmp_path, tag):
    canary = tmp_path / "pwned"
    value = tag.replace("{canary}", str(canary))
    line = error_of(write_recipe, chain("Flatten", HEAD, after=f"train:\n  epochs: {value}\n"))
    short = value.split(" ")[0]
    assert line == (f"error: recipe.yaml:8:11: train.epochs: YAML tag '{short}' is not allowed: a recipe holds "
                    "data, never Python objects")
    assert not canary.exists()


def test_a_python_tag_in_a_set_is_refused(write_recipe, tmp_path):
    canary = tmp_path / "pwned"
    line = error_of(write_recipe, OK, f"train.epochs=!!python/object/apply:os.system ['touch {canary}']")
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in line
    assert not canary.exists()


# -- 2. names of modules, functions and files to import ---------------------------------------------------
MODULES = "a recipe cannot name a module or function to import"
SERIALIZED = "is Keras's serialized form (class_name, config, module, registered_name)"
IMPORTS = {
    "layer_os_system": (chain("os.system", "Flatten", HEAD), "recipe.yaml:5:7: model.layers[0]: 'os.system' is a "
                        f"module path; a layer is named by its Keras name alone, and {MODULES}"),
    "layer_keras_path": (chain("keras.layers.Lambda", "Flatten", HEAD), "'keras.layers.Lambda' is a module path; a "
                         "layer is named by its Keras name alone ('Lambda')"),
    "layer_colon_path": (chain("os:system", "Flatten", HEAD), f"'os:system' is a module path; a layer is named by "
                         f"its Keras name alone, and {MODULES}"),
    "lambda": (chain("Flatten", "Lambda: {function: 'lambda x: x'}", HEAD),
               "model.layers[1]: layer Lambda is not allowed in a recipe: it runs arbitrary Python code"),
    "tfsmlayer": (chain("TFSMLayer: {filepath: /tmp/model}", "Flatten", HEAD),
                  "layer TFSMLayer is not allowed in a recipe: it loads a SavedModel from disk"),
    "module_argument": (chain("Conv2D: {filters: 8, kernel_size: 3, module: os}", "Flatten", HEAD),
                        "recipe.yaml:5:44: model.layers[0].Conv2D.module: Conv2D has no argument 'module': a recipe "
                        "gives a class's arguments only, and never names a module or code to import"),
    "registered_name": (chain("Conv2D: {filters: 8, kernel_size: 3, registered_name: x}", "Flatten", HEAD),
                        "Conv2D.registered_name: Conv2D has no argument 'registered_name': a recipe gives"),
    "custom_objects_argument": (chain("Dense: {units: 3, custom_objects: {f: os.system}}", "Flatten", HEAD),
                                "Dense has no argument 'custom_objects': a recipe gives a class's arguments only"),
    "custom_objects_section": (OK + "custom_objects: {f: os.system}\n", "custom_objects: unknown key 'custom_objects'"),
    "custom_objects_in_train": (OK + "train: {custom_objects: {f: os.system}}\n",
                                "train.custom_objects: unknown key 'custom_objects'"),
    "serialized_layer": (chain("{class_name: Dense, config: {units: 3}, module: keras.layers}", "Flatten", HEAD),
                         f"model.layers[0]: {{class_name, config, module}} {SERIALIZED}"),
    "serialized_optimizer": (OK + "train:\n  optimizer: {class_name: Adam, module: os}\n",
                             f"recipe.yaml:8:14: train.optimizer: {{class_name, module}} {SERIALIZED}"),
    "optimizer_path": (OK + "train: {optimizer: keras.optimizers.Adam}\n",
                       "train.optimizer: 'keras.optimizers.Adam' is a module path; an optimizer is named by its "
                       "Keras name alone ('Adam')"),
    "serialized_loss": (OK + "train: {loss: {class_name: MeanSquaredError, module: os}}\n",
                        f"train.loss: {{class_name, module}} {SERIALIZED}"),
    "loss_path": (OK + "train: {loss: os.system}\n", "train.loss: 'os.system' is a module path; a loss is named"),
    "loss_class_path": (OK + "train: {loss: {os.system: {}}}\n", "'os.system' is a module path; a loss is named"),
    "metric_path": (OK + "train: {metrics: [os.system]}\n", "train.metrics[0]: 'os.system' is a module path"),
    "serialized_callback": (OK + "train: {callbacks: [{class_name: EarlyStopping, module: os}]}\n",
                            f"train.callbacks[0]: {{class_name, module}} {SERIALIZED}"),
    "serialized_initializer": (
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_initializer: {class_name: HeNormal, module: os}}",
              "Flatten", HEAD), f"model.layers[0].Conv2D.kernel_initializer: {{class_name, module}} {SERIALIZED}"),
    "initializer_path": (chain("Conv2D: {filters: 8, kernel_size: 3, kernel_initializer: os.system}", "Flatten",
                               HEAD), "'os.system' is a module path; an initializer is named by its Keras name alone"),
    "initializer_class_path": (chain("Conv2D: {filters: 8, kernel_size: 3, kernel_regularizer: {os.system: {}}}",
                                     "Flatten", HEAD), "kernel_regularizer.os.system: 'os.system' is a module path"),
    "activation_path": (chain("Conv2D: {filters: 8, kernel_size: 3, activation: os.system}", "Flatten", HEAD),
                        "model.layers[0].Conv2D.activation: 'os.system' is a module path; an activation is named"),
    "serialized_activation": (
        chain("Conv2D: {filters: 8, kernel_size: 3, activation: {class_name: function, module: os, config: system}}",
              "Flatten", HEAD), f"Conv2D.activation: {{class_name, module, config}} {SERIALIZED}"),
    "serialized_dtype": (
        chain("Dense: {units: 3, dtype: {module: keras, class_name: DTypePolicy, config: {name: float32}}}", "Flatten",
              HEAD), f"model.layers[0].Dense.dtype: {{module, class_name, config}} {SERIALIZED}"),
    "serialized_inner_layer": (
        chain("Bidirectional: {layer: {class_name: LSTM, config: {units: 3}, module: keras.layers}}", HEAD)
        .replace("[8, 8, 1]", "[8, 8]"), "model.layers[0].Bidirectional.layer: layer is a layer such as"),
    "serialized_in_a_schedule": (
        OK + "train:\n  optimizer: {Adam: {learning_rate: {class_name: CosineDecay, module: os}}}\n",
        "train.optimizer.Adam.learning_rate"),
}


@pytest.mark.parametrize(("text", "expected"), IMPORTS.values(), ids=IMPORTS)
def test_a_recipe_cannot_name_code_to_import(write_recipe, text, expected):
    line = error_of(write_recipe, text)
    assert expected in line, line
    assert re.match(r"^error: recipe\.yaml:\d+:\d+: ", line), line


# -- 3. resource bombs: refused before anything is allocated, never a hang or an out-of-memory kill -----------
def laughs(levels: int) -> str:
    """'Billion laughs' as one flow mapping: each anchor lists ten aliases of the one before (10**(levels+1))."""
    entries = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    entries += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "{" + ", ".join(entries) + "}"


NESTED_BLOCKS = ("name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n    a: {layers: [ReLU, ReLU]}\n"
                 + "".join(f"    {b}: {{layers: [{', '.join([a] * 10)}]}}\n"
                           for a, b in zip("abcde", "bcdef", strict=True))
                 + "  layers: [f, Flatten]\n")  # 2 * 10**5 layer calls, no repeat at all
BOMBS = {
    "billion_laughs": (OK + "train: {epochs: " + laughs(9) + "}\n",
                       "YAML aliases (*name) repeat more than 100,000 values of their anchors (&name)"),
    "billion_laughs_in_a_set": (OK, "YAML aliases (*name) repeat more than 100,000 values",
                                "train.epochs=" + laughs(9)),
    "dense_units": (chain("Flatten", "Dense: {units: 1000000000000}"),
                    "recipe.yaml:6:7: model.layers[1]: the model's weights pass half of this machine's"),
    "dense_units_set": (chain("Flatten", HEAD), "'dense' (Dense) has 65,000,000,000,000 parameters (236.5 TiB as "
                        "float32)", "model.layers[1].Dense.units=1000000000000"),
    "conv_filters_and_kernel": (chain("Conv2D: {filters: 100000, kernel_size: 300, padding: same}", "Flatten", HEAD),
                                "'conv2d' (Conv2D) has 9,000,100,000 parameters"),
    "embedding": (chain("Flatten", "Embedding: {input_dim: 1000000000000, output_dim: 8}"),
                  "'embedding' (Embedding) has 8,000,000,000,000 parameters"),
    "a_bomb_before_a_shape_error": (chain("Flatten", "Dense: {units: 1000000000000}",
                                          "Conv2D: {filters: 3, kernel_size: 3}"),
                                    "model.layers[1]: the model's weights pass half"),
    "input_shape": ("name: t\nmodel:\n  input: [100000, 100000, 3]\n  layers: [Flatten]\n"
                    "data:\n  augment: [{RandomFlip: {mode: horizontal}}]\n",
                    "recipe.yaml:3:10: model.input: one example of shape [100000, 100000, 3] has 30,000,000,000 "
                    "values (111.8 GiB as float32); cnnctl takes at most 268,435,456 (1.0 GiB) per example"),
    "named_input_shape": ("name: t\nmodel:\n  inputs: {a: [100000, 100000, 3]}\n  graph: {f: Flatten}\n",
                          "model.inputs.a: one example of shape [100000, 100000, 3]"),
    "batch_of_inputs": ("name: t\nmodel:\n  input: [4096, 4096, 3]\n  layers: [Flatten]\ndata: {batch_size: 100000}\n",
                        "data.batch_size: a batch of 100,000 inputs of 50,331,648 values is 18.3 TiB as float32, "
                        "more than half of this machine's"),
    "synthetic_shape": ("name: t\ndata: {source: synthetic, shape: [100000, 100000, 3], classes: 2}\n"
                        "model: {input: [8, 8, 1], layers: [Flatten]}\n", "data.shape: one example of shape"),
    "synthetic_classes": ("name: t\ndata: {source: synthetic, shape: [1000, 1000, 3], classes: 1000}\n"
                          "model: {input: [8, 8, 1], layers: [Flatten]}\n",
                          "data.classes: 1,000 classes of [1000, 1000, 3] examples"),
    "synthetic_count": ("name: t\ndata: {source: synthetic, shape: [8, 8, 1], classes: 2, count: 1000000000000}\n"
                        "model: {input: [8, 8, 1], layers: [Flatten]}\n",
                        "data.count: 1,000,000,000,000 synthetic examples; cnnctl generates at most 10,000,000"),
    "image_size": ("name: t\ndata: {source: image_dir, path: x, image_size: [100000, 100000]}\n"
                   "model: {input: [8, 8, 1], layers: [Flatten]}\n", "data.image_size: one example of shape"),
    "repeat": ("name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n    b: {layers: [ReLU]}\n"
               "  layers: [{b: {repeat: 1000000000}}]\n",
               "recipe.yaml:6:25: model.layers[0].b.repeat: repeat is at most 1,000, got 1,000,000,000"),
    "blocks_of_blocks": (NESTED_BLOCKS, "the model expands to more than 10,000 layer calls"),
    "graph_conv_grid": ("name: t\nmodel:\n  input: [256, 256, 1]\n  layers: [GraphConv: {units: 4}, Flatten]\n",
                        "GraphConv over the 256x256 pixel grid builds a 65,536 x 65,536 adjacency matrix"),
    "unrolled_rnn": ("name: t\nmodel:\n  input: [100000, 8]\n  layers: [LSTM: {units: 4, unroll: true}]\n",
                     "unroll: true copies the cell once per time step, and the input has 100,000 steps"),
    "power_in_a_block": ("name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n    b:\n      params: {n: 8}\n"
                         "      layers: [{Dense: {units: '${n ** n ** n}'}}]\n  layers: [Flatten, {b: {n: 9}}]\n",
                         "'${n ** n ** n}': 9 ** 387420489 is too large (more than 256 bits)"),
    "string_repeated_in_a_block": ("name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n    b:\n      params: {n: 8}\n"
                                   "      layers: [{Dense: {units: 3, name: \"${'x' * 10**9}\"}}]\n"
                                   "  layers: [Flatten, b]\n", "arithmetic is on numbers, got 'x' and 1000000000"),
    "long_expression": ("name: t\nmodel:\n  input: [8, 8, 1]\n  blocks:\n    b:\n      params: {n: 8}\n"
                        "      layers: [{Dense: {units: '${" + "+".join(["n"] * 300) + "}'}}]\n"
                        "  layers: [Flatten, b]\n",
                        "characters long; an expression is at most 500"),
    "rescale_power": ("name: t\ndata: {rescale: '9**9**9'}\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n",
                      "data.rescale: rescale must be a number or arithmetic such as 1/255"),
    "nesting": (OK + "train: {epochs: " + "[" * 3000 + "]" * 3000 + "}\n", "values nest more than 100 levels deep"),
    "huge_integer": (OK + "train: {epochs: " + "9" * 5000 + "}\n", "train.epochs: cannot read '9999"),
}


@pytest.mark.parametrize(("text", "expected", "sets"), [(t, e, tuple(sets)) for t, e, *sets in BOMBS.values()],
                         ids=BOMBS)
def test_a_resource_bomb_is_refused_quickly(write_recipe, text, expected, sets):
    import time

    started = time.perf_counter()
    line = error_of(write_recipe, text, *sets)
    assert time.perf_counter() - started < 20  # TensorFlow's import is paid once; a bomb would hang or be killed
    assert expected in line, line


def test_a_refused_model_leaves_nothing_to_allocate(write_recipe):
    """Its weights, created without values, are dropped: Keras would initialize them on leaving its next
    StatelessScope (a later build, a symbolic call), allocating what was refused."""
    from cnnctl.model import build
    from cnnctl.model.build import _uninitialized
    from cnnctl.recipe import load_recipe

    error_of(write_recipe, chain("Flatten", "Dense: {units: 1000000000000}"))
    assert _uninitialized() == []
    assert build(load_recipe(str(write_recipe(OK)))).model.count_params() == 650


@pytest.mark.parametrize("name", ["digits_cnn", "digits_graph", "digits_bilstm", "se_resnet", "early_exit"])
def test_weights_built_deferred_equal_a_plain_build(name):
    """build() creates the weights inside keras.StatelessScope, counts them, then initializes them: the same
    values as creating them at once (the seeded initializers draw the same numbers), and the same names."""
    import keras
    import numpy as np

    from cnnctl.model import build
    from cnnctl.model.build import _build
    from cnnctl.model.precision import is_mixed, policy_scope, resolve_policy
    from cnnctl.recipe import load_recipe
    from tests.conftest import ROOT

    recipe = load_recipe(str(ROOT / "recipes" / f"{name}.yaml"))
    keras.backend.clear_session()  # Keras numbers the names of inner layers per session (forward_lstm_1, ...)
    deferred = build(recipe).model
    keras.backend.clear_session()
    policy = resolve_policy(recipe.train.mixed_precision)
    with policy_scope(policy):
        plain = _build(recipe, float32_outputs=is_mixed(policy), budget=None).model
    assert [w.path for w in deferred.weights] == [w.path for w in plain.weights]
    for a, b in zip(deferred.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_initializer_that_fails_late_is_located_and_leaves_nothing_behind(write_recipe):
    """Identity fails only when the deferred weights are initialized: the error is located at the layer, and
    Keras's list of uninitialized variables is left empty, so the next build in the process works."""
    from cnnctl.model.build import _uninitialized

    line = error_of(write_recipe, chain("Conv2D: {filters: 8, kernel_size: 3, kernel_initializer: Identity}",
                                        "Flatten", HEAD))
    assert line.startswith("error: recipe.yaml:5:7: model.layers[0]: ") and "Identity" in line, line
    assert _uninitialized() == []
    invoke("check", str(write_recipe(OK)))
