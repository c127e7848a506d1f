"""Malformed recipes a real user writes, each through the real CLI (in-process, with CliRunner).

Every case is one mistake. The recipe marks the line the error must point at with
``# <-``; the case gives the column (``None``: only the line is asserted), the key
path printed after the location, a phrase of the message and how many ``error:``
lines the one mistake may produce (one, unless the recipe makes several mistakes).
``cnnctl check`` is used for everything it can see without data; ``cnnctl train``
only where the mistake shows against the data. Cases marked xfail describe the
behaviour we want and do not have yet: the reason says what the CLI does instead.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnctl.cli import main

MARK = "# <-"


@dataclass(frozen=True)
class Case:
    text: str  # the recipe; the error is located on the line marked "# <-" (no mark: the file itself)
    col: int | None  # the reported column, or None where only the line is stable
    path: str  # the key path printed after the location ("" for the whole document or the --set itself)
    phrase: str | re.Pattern  # in the first error line
    errors: int = 1  # how many "error: " lines
    sets: tuple[str, ...] = ()  # --set overrides; the error is then located at "--set <the first one>"
    xfail: str = ""  # why the CLI does not do this yet


def recipe(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def chain(*layers: str, after: str = "") -> str:
    """A recipe for the digits data whose layers start on line 5; ``after`` adds sections below them."""
    return "name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n" + "".join(f"    - {x}\n" for x in layers) + after


HEAD = "Dense: {units: 10, activation: softmax}"
OK = chain("Flatten", HEAD)  # a sound recipe, for the --set cases

# A block with a required parameter, then the model's layers from line 11.
CONV_BLOCK = recipe("""
    name: t
    model:
      input: [8, 8, 1]
      blocks:
        conv_relu:
          params: {filters: required, kernel_size: 3}
          layers:
            - Conv2D: {filters: $filters, kernel_size: $kernel_size, padding: same}
            - ReLU
      layers:
    """)

CHECK: dict[str, Case] = {
    # -- the recipe's structure: sections, keys, types (no TensorFlow) ---------------------
    "epochs_as_word": Case(
        chain("Flatten", HEAD, after="train:\n  epochs: ten  # <-\n"),
        11, "train.epochs", "Input should be a valid integer, got 'ten'"),
    "negative_batch_size": Case(
        "name: t\ndata:\n  batch_size: -8  # <-\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n",
        15, "data.batch_size", "greater than 0, got -8"),
    "split_leaves_no_training_data": Case(
        "name: t\ndata:\n  split: {validation: 0.5, test: 0.5}  # <-\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n",
        10, "data.split", "leave nothing to train on; their sum must be below 1"),
    "data_key_typo": Case(
        "name: t\ndata:\n  bach_size: 16  # <-\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n",
        3, "data.bach_size", "unknown key 'bach_size' (did you mean 'batch_size'?)"),
    "train_key_british_spelling": Case(
        chain("Flatten", HEAD, after="train:\n  optimiser: adam  # <-\n"),
        3, "train.optimiser", "unknown key 'optimiser' (did you mean 'optimizer'?)"),
    "model_input_shape_keras_style": Case(
        "name: t\nmodel:\n  input_shape: [8, 8, 1]  # <-\n  layers: [Flatten]\n",
        3, "model.input_shape", "unknown key 'input_shape'"),
    "mode_typo": Case(
        chain("Flatten", HEAD, after="train:\n  mode: maximum  # <-\n"),
        9, "train.mode", "got 'maximum' (did you mean 'max'?)"),
    "export_unknown_format": Case(
        chain("Flatten", HEAD, after="export: [onnxx]  # <-\n"),
        10, "export[0]", "unknown export format 'onnxx' (did you mean 'onnx'?)"),
    "input_as_string": Case(
        "name: t\nmodel:\n  input: 8x8x1  # <-\n  layers: [Flatten]\n",
        10, "model.input", "Input should be a valid list, got '8x8x1'"),
    "input_dimension_zero": Case(
        "name: t\nmodel:\n  input: [8, 8, 0]  # <-\n  layers: [Flatten]\n",
        17, "model.input[2]", "greater than 0, got 0"),
    "boolean_quoted": Case(
        "name: t\ndata:\n  shuffle: 'true'  # <-\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n",
        12, "data.shuffle", "Input should be a valid boolean, got 'true'"),
    "model_section_missing": Case(
        "name: t  # <-\ntrain:\n  epochs: 3\n",
        1, "", "missing required key 'model'"),
    "model_input_missing": Case(
        "name: t\nmodel:\n  layers: [Flatten]  # <-\n",
        3, "model", "give the model's input shape as input: [h, w, c]"),
    "layers_and_graph_both": Case(
        "name: t\nmodel:\n  input: [8, 8, 1]  # <-\n  layers: [Flatten]\n  graph:\n    flat: Flatten\n",
        3, "model", "give the network as layers (a chain) or as graph (named nodes), one of the two"),
    "layers_without_dashes": Case(
        "name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n    Flatten: {}  # <-\n    Dense: {units: 10}\n",
        5, "model.layers", "Input should be a valid list"),
    "layer_arguments_not_indented": Case(
        chain("Conv2D:  # <-\n      filters: 8\n      kernel_size: 3", "Flatten", HEAD),
        7, "model.layers[0]", "got 3 keys (Conv2D, filters, kernel_size): is the indentation of the arguments off"),
    "layer_arguments_a_number": Case(
        chain("Flatten", "Dense: 10  # <-"),
        7, "model.layers[1]", "the arguments of layer 'Dense' must be a mapping of argument names to values, got 10"),
    "empty_file": Case(
        "", None, "", "the recipe is empty; expected a mapping"),
    "recipe_is_a_list": Case(
        "- name: t  # <-\n- model: {}\n",
        1, "", "the recipe is a list; expected a mapping"),
    # -- layers, against their Keras classes -------------------------------------------------
    "yaml_no_is_false": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, padding: no}  # <-", "Flatten", HEAD),
        53, "model.layers[0].Conv2D.padding",
        "got the boolean false, but padding is a string ('valid' or 'same'); YAML reads an unquoted yes/no/on/off "
        "as a boolean: write 'no' in quotes if you meant the word"),
    "argument_typo": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, stride: 2}  # <-", "Flatten", HEAD),
        44, "model.layers[0].Conv2D.stride", "Conv2D has no argument 'stride' (did you mean 'strides'?)"),
    "class_in_lower_case": Case(
        chain("conv2d: {filters: 8, kernel_size: 3}  # <-", "Flatten", HEAD),
        7, "model.layers[0]", "unknown Keras layer 'conv2d' (did you mean 'Conv2D'?)"),
    "lambda_refused": Case(
        chain("Flatten", "Lambda: {function: 'lambda x: x * 2'}  # <-", HEAD),
        7, "model.layers[1]", "layer Lambda is not allowed in a recipe: it runs arbitrary Python code"),
    "input_layer_refused": Case(
        chain("InputLayer: {shape: [8, 8, 1]}  # <-", "Flatten", HEAD),
        7, "model.layers[0]", "layer InputLayer is not allowed in a recipe: the input is declared by model.input"),
    "negative_filters": Case(
        chain("Conv2D: {filters: -8, kernel_size: 3}  # <-", "Flatten", HEAD),
        25, "model.layers[0].Conv2D.filters", "Expected a strictly positive value. Received filters=-8"),
    "dense_without_units": Case(
        chain("Flatten", "Dense: {activation: softmax}  # <-"),
        14, "model.layers[1].Dense", "missing 1 required positional argument: 'units'"),
    "dropout_rate_above_one": Case(
        chain("Flatten", "Dropout: {rate: 1.5}  # <-", HEAD),
        23, "model.layers[1].Dropout.rate", "Expected a float value between 0 and 1. Received: rate=1.5"),
    "units_quoted": Case(
        chain("Flatten", "Dense: {units: '10', activation: softmax}  # <-"),
        22, "model.layers[1].Dense.units", "(the value is the string '10')"),
    "kernel_size_of_wrong_rank": Case(
        chain("Conv2D: {filters: 8, kernel_size: [3]}  # <-", "Flatten", HEAD),
        41, "model.layers[0].Conv2D.kernel_size", "must be a tuple of 2 integers"),
    "regularizer_class_typo": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_regularizer: {L1l2: {l1: 1.0e-5}}}  # <-", "Flatten",
              HEAD),
        64, "model.layers[0].Conv2D.kernel_regularizer", "unknown regularizer 'L1l2' (did you mean 'L1L2'?)"),
    "regularizer_class_given_a_number": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_regularizer: {L2: 0.01}}  # <-", "Flatten", HEAD),
        None, "model.layers[0].Conv2D.kernel_regularizer.L2", "the arguments of L2 must be a mapping"),
    "initializer_name_typo": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_initializer: he_normall}  # <-", "Flatten", HEAD),
        None, "model.layers[0].Conv2D.kernel_initializer", "did you mean 'he_normal'"),
    "initializer_class_typo": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_initializer: {HeNormall: {}}}  # <-", "Flatten", HEAD),
        64, "model.layers[0].Conv2D.kernel_initializer", "unknown initializer 'HeNormall' (did you mean 'HeNormal'?)"),
    "activation_typo": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, activation: rleu}  # <-", "Flatten", HEAD),
        None, "model.layers[0].Conv2D.activation", "did you mean 'relu'"),
    "constraint_argument_typo": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, kernel_constraint: {MaxNorm: {max_val: 3}}}  # <-", "Flatten",
              HEAD),
        74, "model.layers[0].Conv2D.kernel_constraint.MaxNorm.max_val", "did you mean 'max_value'"),
    "bidirectional_inner_layer_typo": Case(
        "name: t\nmodel:\n  input: [8, 8]\n  layers:\n    - Bidirectional: {layer: {LSTN: {units: 8}}}  # <-\n"
        f"    - {HEAD}\n",
        30, "model.layers[0].Bidirectional.layer", "unknown Keras layer 'LSTN' (did you mean 'LSTM'?)"),
    "bidirectional_inner_argument_typo": Case(
        "name: t\nmodel:\n  input: [8, 8]\n  layers:\n    - Bidirectional: {layer: {LSTM: {unit: 8}}}  # <-\n"
        f"    - {HEAD}\n",
        38, "model.layers[0].Bidirectional.layer.LSTM.unit", "LSTM has no argument 'unit' (did you mean 'units'?)"),
    "two_bad_layers_reported_together": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, stride: 2}  # <-", "Flatten", "Dense: {unit: 10}"),
        44, "model.layers[0].Conv2D.stride", "did you mean 'strides'", errors=2),
    "missing_colon_after_class": Case(
        chain("Flatten", "Dense {units: 10}  # <-"),
        7, "model.layers[1]", re.compile(r"'Dense'.*':'")),
    "layer_name_used_twice": Case(
        chain("Conv2D: {filters: 8, kernel_size: 3, name: conv}",
              "Conv2D: {filters: 8, kernel_size: 3, name: conv}  # <-", "Flatten", HEAD),
        15, "model.layers[1].Conv2D", "the layer name 'conv' is already used (at "),
    # -- shapes --------------------------------------------------------------------------------
    "conv_after_flatten": Case(
        chain("Flatten", "Conv2D: {filters: 8, kernel_size: 3}  # <-", HEAD),
        7, "model.layers[1]", "Conv2D cannot take the output of 'flatten' (Flatten), of shape (batch, 64)"),
    "image_shrinks_to_nothing": Case(
        chain("Conv2D: {filters: 8, kernel_size: 5}", "Conv2D: {filters: 8, kernel_size: 5}  # <-", "Flatten", HEAD),
        7, "model.layers[1]", "of shape (batch, 4, 4, 8): Computed output size would be zero or negative"),
    "add_of_different_shapes": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            a: {Conv2D: {filters: 8, kernel_size: 3, padding: same}}
            b: {Conv2D: {filters: 4, kernel_size: 3, padding: same}, from: image}
            sum: {Add: {}, from: [a, b]}  # <-
        """),
        10, "model.graph.sum",
        "Add cannot combine 'a' (Conv2D), of shape (batch, 8, 8, 8) and 'b' (Conv2D), of shape (batch, 8, 8, 4)"),
    # -- graphs ----------------------------------------------------------------------------------
    "from_typo": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            conv: {Conv2D: {filters: 8, kernel_size: 3}}
            flat: {Flatten: {}, from: conv1}  # <-
            logits: {Dense: {units: 10}}
        """),
        31, "model.graph.flat.from", "no node or input named 'conv1' (did you mean 'conv'?)"),
    "from_a_node_further_down": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            conv: {Conv2D: {filters: 8, kernel_size: 3}}
            flat: {Flatten: {}, from: logits}  # <-
            logits: {Dense: {units: 10}, from: conv}
        """),
        31, "model.graph.flat.from", "'logits' is defined further down"),
    "from_input_when_it_is_named_image": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            conv: {Conv2D: {filters: 8, kernel_size: 3}, from: input}  # <-
            flat: Flatten
            logits: {Dense: {units: 10}}
        """),
        None, "model.graph.conv.from", "'image'"),
    "two_inputs_first_node_without_from": Case(recipe("""
        name: t
        model:
          inputs:
            image: [8, 8, 1]
            meta: [5]
          graph:
            conv: {Conv2D: {filters: 8, kernel_size: 3}}  # <-
            flat: Flatten
            logits: {Dense: {units: 10}}
        """),
        11, "model.graph.conv", "say which node it reads with from: NAME", errors=1),
    "output_name_typo": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            flat: Flatten
            logits: {Dense: {units: 10}}
          outputs: [logit]  # <-
        """),
        13, "model.outputs[0]", "no node named 'logit' (did you mean 'logits'?)"),
    "error_in_the_output_node": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            conv: {Conv2D: {filters: 8, kernel_size: 3}}
            flat: Flatten
            logits: {Dense: {units: 10}, from: flatt}  # <-
          outputs: [logits]
        """),
        40, "model.graph.logits.from", "no node or input named 'flatt' (did you mean 'flat'?)"),
    "share_typo": Case(recipe("""
        name: t
        model:
          inputs: {left: [8], right: [8]}
          graph:
            emb_l: {Dense: {units: 4}, from: left}
            emb_r: {share: emb_left, from: right}  # <-
            diff: {Subtract: {}, from: [emb_l, emb_r]}
            same: {Dense: {units: 1, activation: sigmoid}}
        """),
        20, "model.graph.emb_r.share", "no node named 'emb_left' to share (did you mean 'emb_l'?)"),
    "node_layer_given_a_name": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            flat: {Flatten: {name: flatten_1}}  # <-
            logits: {Dense: {units: 10}}
        """),
        22, "model.graph.flat.Flatten.name", "a node's layer is named by its key; remove name"),
    "node_with_two_layers": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            conv: {Conv2D: {filters: 8, kernel_size: 3}, MaxPooling2D: {}}  # <-
            flat: Flatten
            logits: {Dense: {units: 10}}
        """),
        11, "model.graph.conv", "a node holds one layer or block (and optionally from/share), got 2 layers"),
    "node_named_like_an_input": Case(recipe("""
        name: t
        model:
          inputs: {image: [8, 8, 1], meta: [5]}
          graph:
            meta: {Dense: {units: 4}, from: meta}  # <-
            flat: {Flatten: {}, from: image}
        """),
        5, "model.graph.meta", "node 'meta' has the name of an input; give it another"),
    "node_not_a_layer": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            flat: Flatten
            hidden: 64  # <-
            logits: {Dense: {units: 10}}
        """),
        13, "model.graph.hidden", "a node is a layer or block such as {Conv2D: {filters: 8}, from: x}, got 64"),
    "block_given_too_few_inputs": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            merge:
              inputs: [a, b]
              graph:
                sum: {Add: {}, from: [a, b]}
          graph:
            conv: {Conv2D: {filters: 1, kernel_size: 1}}
            merged: {merge: {}, from: conv}  # <-
            flat: Flatten
        """),
        13, "model.graph.merged", "block 'merge' takes 2 input(s) (a, b), given 1"),
    # -- blocks ----------------------------------------------------------------------------------
    "block_parameter_typo": Case(
        CONV_BLOCK + "    - conv_relu: {filters: 8, kernel: 5}  # <-\n" + f"    - Flatten\n    - {HEAD}\n",
        31, "model.layers[0].conv_relu.kernel",
        "block 'conv_relu' has no parameter 'kernel' (did you mean 'kernel_size'?)"),
    "block_required_parameter_missing": Case(
        CONV_BLOCK + "    - conv_relu: {kernel_size: 5}  # <-\n" + f"    - Flatten\n    - {HEAD}\n",
        18, "model.layers[0].conv_relu", "block 'conv_relu' needs a value for its parameter 'filters'"),
    "expression_unknown_parameter": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            wide:
              params: {filters: 8}
              layers:
                - Conv2D: {filters: '${filter * 2}', kernel_size: 3}  # <-
          layers:
            - wide: {filters: 4}
            - Flatten
        """),
        29, "model.blocks.wide.layers[0].Conv2D.filters",
        "unknown parameter 'filter' (did you mean 'filters'?) (parameters: filters) (in block 'wide' used at "
        "model.layers[0])"),
    "expression_runs_code": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            wide:
              params: {filters: 8}
              layers:
                - Conv2D: {filters: "${__import__('os').getpid()}", kernel_size: 3}  # <-
          layers:
            - wide
            - Flatten
        """),
        29, "model.blocks.wide.layers[0].Conv2D.filters",
        "uses something other than parameters, numbers, arithmetic, min and max"),
    "expression_not_closed": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            wide:
              params: {filters: 8}
              layers:
                - Conv2D: {filters: '${filters * 2', kernel_size: 3}  # <-
          layers:
            - wide
            - Flatten
        """),
        None, "model.blocks.wide.layers[0].Conv2D.filters", "${filters * 2"),
    "parameter_outside_a_block": Case(
        chain("Conv2D: {filters: $filters, kernel_size: 3}  # <-", "Flatten", HEAD),
        25, "model.layers[0].Conv2D.filters", "unknown parameter 'filters' (parameters: none)"),
    "block_uses_itself": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            stage:
              layers:
                - Conv2D: {filters: 8, kernel_size: 3, padding: same}
                - stage  # <-
          layers:
            - stage
            - Flatten
        """),
        11, "model.blocks.stage.layers[1].stage", "block 'stage' uses itself (stage -> stage)"),
    "block_named_like_a_keras_layer": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            Attention:  # <-
              params: {heads: 2}
              layers: [Flatten]
          layers:
            - Attention: {heads: 4}
        """),
        5, "model.blocks.Attention", "block 'Attention' has the name of a Keras layer; rename it"),
    "block_shadows_a_keras_layer": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            Dense:  # <-
              layers: [Flatten]
          layers:
            - Dense: {units: 10}
        """),
        5, "model.blocks.Dense", "block 'Dense' has the name of a Keras layer"),
    "repeat_zero": Case(
        CONV_BLOCK + "    - conv_relu: {filters: 8, repeat: 0}  # <-\n" + f"    - Flatten\n    - {HEAD}\n",
        39, "model.layers[0].conv_relu.repeat", "repeat must be a positive integer, got 0"),
    "block_with_layers_and_graph": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            act:
              layers: [ReLU]  # <-
              graph:
                r: ReLU
          layers:
            - act
            - Flatten
        """),
        7, "model.blocks.act", "a block has either layers (a chain) or graph (named nodes), not both or neither"),
    "block_output_unknown": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          blocks:
            act:
              graph:
                a: ReLU
                b: ReLU
              output: c  # <-
          layers:
            - act
            - Flatten
        """),
        15, "model.blocks.act.output", "no node named 'c' in block 'act'"),
    # -- train: optimizer, loss, metrics, monitor (check compiles the model) -----------------------
    "optimizer_typo": Case(
        chain("Flatten", HEAD, after="train:\n  optimizer: adamm  # <-\n"),
        14, "train.optimizer", "unknown Keras optimizer 'adamm' (did you mean 'adam'?)"),
    "optimizer_keras2_argument": Case(
        chain("Flatten", HEAD, after="train:\n  optimizer: {Adam: {lr: 0.01}}  # <-\n"),
        22, "train.optimizer.Adam.lr", "Adam has no argument 'lr'"),
    "loss_typo": Case(
        chain("Flatten", HEAD, after="train:\n  loss: sparse_categorical_crossentropyy  # <-\n"),
        9, "train.loss", "unknown Keras loss 'sparse_categorical_crossentropyy' (did you mean "
        "'sparse_categorical_crossentropy'?)"),
    "loss_argument_typo": Case(
        chain("Flatten", HEAD, after="train:\n  loss: {SparseCategoricalCrossentropy: {from_logit: true}}  # <-\n"),
        42, "train.loss.SparseCategoricalCrossentropy.from_logit", "did you mean 'from_logits'"),
    "metric_typo": Case(
        chain("Flatten", HEAD, after="train:\n  metrics: [acuracy]  # <-\n"),
        13, "train.metrics[0]", "unknown Keras metric 'acuracy' (did you mean 'accuracy'?)"),
    "monitor_typo": Case(
        chain("Flatten", HEAD, after="train:\n  monitor: val_acc  # <-\n"),
        12, "train.monitor", "'val_acc' is not a metric of this run (did you mean 'val_accuracy'?)"),
    "monitor_default_without_validation": Case(
        "name: t\ndata:\n  split: {validation: 0.0}  # <-\nmodel:\n  input: [8, 8, 1]\n  layers: [Flatten]\n"
        "train:\n  epochs: 1\n",
        None, "data.split.validation", "val_loss"),
    "loss_for_an_output_that_does_not_exist": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            flat: Flatten
            label: {Dense: {units: 10, activation: softmax}}
            size: {Dense: {units: 1}, from: flat}
          outputs: [label, size]
        train:
          loss: {label: sparse_categorical_crossentropy, sise: mse}  # <-
        """),
        50, "train.loss.sise", "the model has no output named 'sise' (did you mean 'size'?) (outputs: label, size)"),
    "loss_for_the_only_output_misspelt": Case(recipe("""
        name: t
        model:
          input: [8, 8, 1]
          graph:
            flat: Flatten
            label: {Dense: {units: 10, activation: softmax}}
          outputs: [label]
        train:
          loss: {lable: sparse_categorical_crossentropy}  # <-
        """),
        None, "train.loss.lable", "no output named 'lable' (did you mean 'label'?)"),
}

SETS: dict[str, Case] = {
    "set_key_typo": Case(OK, None, "train.epoch", "unknown key 'epoch' (did you mean 'epochs'?)",
                         sets=("train.epoch=3",)),
    "set_index_out_of_range": Case(OK, None, "model.layers[5]", "no item [5] here: the list has 2 items",
                                   sets=("model.layers[5].Dense.units=3",)),
    "set_value_of_wrong_type": Case(OK, None, "train.epochs", "Input should be a valid integer, got 'ten'",
                                    sets=("train.epochs=ten",)),
    "set_without_value": Case(OK, None, "", "expected KEY=VALUE", sets=("train.epochs",)),
    "set_not_a_key_path": Case(OK, None, "", "'train..epochs' is not a key path", sets=("train..epochs=3",)),
    "set_layer_argument_typo": Case(OK, None, "model.layers[1].Dense.unit",
                                    "Dense has no argument 'unit' (did you mean 'units'?)",
                                    sets=("model.layers[1].Dense.unit=3",)),
    "set_negative_index_out_of_range": Case(OK, None, "model.layers[-3]", "no item [-3] here: the list has 2 items",
                                            sets=("model.layers[-3].Dense.units=3",)),
    # cnnctl 93d106b made a new node conv9 and failed in Keras with "missing kernel_size" (issue 16, item 2)
    "set_inside_a_node_that_does_not_exist": Case(
        (Path(__file__).parents[2] / "recipes" / "early_exit.yaml").read_text(), None, "model.graph.conv9",
        "no node 'conv9' (did you mean 'conv3'?)", sets=("model.graph.conv9.Conv2D.filters=8",)),
    "set_inside_a_block_that_does_not_exist": Case(
        CONV_BLOCK + "    - conv_relu: {filters: 8}\n" + f"    - Flatten\n    - {HEAD}\n", None,
        "model.blocks.conv_rlu", "no block 'conv_rlu' (did you mean 'conv_relu'?)",
        sets=("model.blocks.conv_rlu.params.filters=4",)),
}

# Visible only against the data, so `train`: digits gives one [8, 8, 1] image and a class index.
TRAIN: dict[str, Case] = {
    "input_shape_not_the_data": Case(
        "name: t\nmodel:\n  input: [28, 28, 1]  # <-\n  layers:\n    - Flatten\n"
        f"    - {HEAD}\ntrain:\n  epochs: 1\n",
        10, "model.input", "the model takes inputs of shape [28, 28, 1] but the data gives [8, 8, 1]"),
    "two_inputs_for_one_image": Case(recipe("""
        name: t
        model:
          inputs:
            image: [8, 8, 1]  # <-
            meta: [5]
          graph:
            flat: {Flatten: {}, from: image}
            joined: {Concatenate: {}, from: [flat, meta]}
            label: {Dense: {units: 10, activation: softmax}}
        train:
          epochs: 1
        """),
        5, "model.inputs", "the model has 2 inputs (image, meta) but data source 'digits' gives one"),
    "one_hot_loss_for_class_indices": Case(
        chain("Flatten", HEAD, after="train:\n  epochs: 1\n  loss: categorical_crossentropy  # <-\n"),
        9, "train.loss", "the loss cannot compare the labels with the model's outputs"),
}


def params(cases: dict[str, Case], command: str) -> list:
    return [pytest.param(command, case, id=name,
                         marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [])
            for name, case in cases.items()]


def expected_prefix(case: Case, path: Path) -> str:
    """A regex for the start of the first error line: the location, then the key path."""
    if case.sets:
        where = re.escape(f"--set {case.sets[0]}")
    else:
        lines = [i for i, line in enumerate(case.text.splitlines(), 1) if line.rstrip().endswith(MARK)]
        assert len(lines) <= 1, "mark one line"
        where = re.escape(str(path))
        if lines:
            where += f":{lines[0]}:" + (str(case.col) if case.col is not None else r"\d+")
    key_path = f" {re.escape(case.path)}:" if case.path else ""
    return f"^error: {where}:{key_path} "


# log.tensorboard: true, false or a mapping of options (cnnctl.recipe.train_spec.TensorBoardSpec).
TENSORBOARD: dict[str, Case] = {
    "tensorboard_as_word": Case(OK + "log:\n  tensorboard: always  # <-\n", 16, "log.tensorboard",
                                "log.tensorboard is true, false, or a mapping of options"),
    "tensorboard_option_typo": Case(OK + "log:\n  tensorboard: {histogram_frequency: 2}  # <-\n", 17,
                                    "log.tensorboard.histogram_frequency",
                                    "unknown key 'histogram_frequency' (did you mean 'histogram_freq'?)"),
    "tensorboard_profile_backwards": Case(OK + "log:\n  tensorboard: {profile_batch: [10, 5]}  # <-\n", 32,
                                          "log.tensorboard.profile_batch",
                                          "profile_batch is 0 (off), a batch number, or [first, last]"),
    "tensorboard_negative_images": Case(OK + "log:\n  tensorboard:\n    input_images: -4  # <-\n", 19,
                                        "log.tensorboard.input_images", "greater than or equal to 0"),
    "tensorboard_set_option_typo": Case(OK, None, "log.tensorboard.confusion",
                                        "unknown key 'confusion' (did you mean 'confusion_matrix'?)",
                                        sets=("log.tensorboard.confusion=false",)),
}


@pytest.mark.parametrize(("command", "case"), params(CHECK, "check") + params(SETS, "check")
                         + params(TENSORBOARD, "check") + params(TRAIN, "train"))
def test_malformed_recipe(command: str, case: Case, tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    path.write_text(case.text, encoding="utf-8")
    runs = tmp_path / "runs"
    args = [command, str(path), *(a for s in case.sets for a in ("--set", s))]
    if command == "train":
        args += ["--runs-dir", str(runs)]

    result = CliRunner().invoke(main, args)

    assert isinstance(result.exception, SystemExit), f"escaped: {result.exception!r}"  # else: a traceback
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == case.errors, result.stderr
    assert re.match(expected_prefix(case, path), errors[0]), errors[0]
    if isinstance(case.phrase, re.Pattern):
        assert case.phrase.search(errors[0]), errors[0]
    else:
        assert case.phrase in errors[0], errors[0]
    if command == "train":  # a rejected recipe leaves no run behind (`eval latest` would find it)
        assert not runs.exists() or not any(runs.glob("*/*")), sorted(map(str, runs.rglob("*")))
