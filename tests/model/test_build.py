"""Recipe.model -> keras.Model: Keras names and arguments, shapes, parameter counts, errors."""

import math

import keras
import numpy as np
import pytest

from cnnctl.errors import RecipeError
from cnnctl.model import build, build_model, check_report
from cnnctl.recipe import load_recipe, load_recipe_text
from tests.conftest import DIGITS


def same_out(size: int, stride: int) -> int:
    """TensorFlow's SAME padding: out = ceil(in / stride)."""
    return math.ceil(size / stride)


def test_digits_network_shapes_follow_the_same_padding_formula():
    summary = check_report(build(load_recipe(str(DIGITS))))
    shapes = [layer["output_shape"] for layer in summary["layers"]]
    conv2 = same_out(8, 2)  # 4
    pool = same_out(conv2, 2)  # 2
    assert shapes == [[8, 8, 10], [conv2, conv2, 5], [4, 4, 5], [4, 4, 5], [pool, pool, 5],
                      [pool * pool * 5], [50], [10]]
    assert [layer["class"] for layer in summary["layers"]] == [
        "Conv2D", "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Flatten", "Dense", "Dense"]


def test_digits_network_parameters_match_a_hand_count():
    summary = check_report(build(load_recipe(str(DIGITS))))
    def conv(k, cin, cout):
        return (k * k * cin + 1) * cout
    expected = [conv(3, 1, 10), conv(3, 10, 5), 4 * 5, 0, 0, 0, (20 + 1) * 50, (50 + 1) * 10]
    assert [layer["params"] for layer in summary["layers"]] == expected
    assert summary["params"] == sum(expected) == 2135
    assert summary["non_trainable_params"] == 10  # batch norm moving mean and variance


def test_digits_network_macs_and_flops_match_a_hand_count():
    summary = check_report(build(load_recipe(str(DIGITS))))
    # MACs = output positions x output channels x (kernel area x input channels); dense: inputs x units
    conv1 = 8 * 8 * 10 * (3 * 3 * 1)  # 5,760
    conv2 = 4 * 4 * 5 * (3 * 3 * 10)  # 7,200 (stride 2, SAME: 8 -> 4)
    dense1, dense2 = 20 * 50, 50 * 10
    expected = [conv1, conv2, 0, 0, 0, 0, dense1, dense2]
    assert [layer["macs"] for layer in summary["layers"]] == expected
    assert [layer["flops"] for layer in summary["layers"]] == [2 * m for m in expected]
    assert summary["macs"] == 14_460 and summary["flops"] == 28_920
    assert summary["uncounted_layers"] == []


def test_digits_receptive_field_and_uneven_same_padding():
    summary = check_report(build(load_recipe(str(DIGITS))))
    # 3x3 s1 -> 3; 3x3 s2 -> 3 + 2*1 = 5 (jump 2); pool 3 s2 -> 5 + 2*2 = 9 (jump 4)
    assert summary["receptive_field"] == {"layer": "max_pooling2d", "size": [9, 9], "stride": [4, 4],
                                           "whole_input": False}
    # SAME with stride 2 on 8 (kernel 3): total pad (4-1)*2+3-8 = 1, all of it after; on 4: (2-1)*2+3-4 = 1
    assert len(summary["warnings"]) == 2
    assert summary["warnings"][0].startswith("conv2d_1 (Conv2D): SAME padding (input 8x8, kernel 3x3, stride 2x2) "
                                             "pads 0x0 before and 1x1 after")
    assert summary["warnings"][1].startswith("max_pooling2d (MaxPooling2D)")


def recipe_with(layers: str, extra: str = ""):
    return load_recipe_text(f"name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n{layers}{extra}", "r.yaml")


def errors(layers: str) -> list:
    with pytest.raises(RecipeError) as err:
        build_model(recipe_with(layers))
    return err.value.problems


def test_regularizer_shorthand_adds_its_loss():
    model = build_model(recipe_with("    - Flatten\n    - Dense: {units: 2, kernel_regularizer: {l2: 0.5}}\n"))
    dense = model.layers[-1]
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L1L2)
    model(np.zeros((1, 8, 8, 1), "float32"))
    kernel = dense.kernel.numpy()
    assert float(sum(model.losses)) == pytest.approx(0.5 * float(np.sum(kernel ** 2)), rel=1e-5)


def test_l1_and_l2_together_and_initializer_by_class():
    model = build_model(recipe_with(
        "    - Flatten\n    - Dense: {units: 2, kernel_regularizer: {l1: 0.1, l2: 0.2},"
        " kernel_initializer: {HeNormal: {seed: 3}}}\n"))
    reg = model.layers[-1].kernel_regularizer
    assert (float(reg.l1), float(reg.l2)) == pytest.approx((0.1, 0.2))
    assert isinstance(model.layers[-1].kernel_initializer, keras.initializers.HeNormal)


def test_wrapper_takes_a_nested_layer():
    model = load_recipe_text("name: t\nmodel:\n  input: [8, 8]\n  layers:\n"
                             "    - Bidirectional: {layer: {LSTM: {units: 4}}}\n"
                             "    - Dense: {units: 10}\n", "r.yaml")
    assert check_report(build(model))["layers"][0]["output_shape"] == [8]


def test_unknown_layer_and_argument_have_did_you_mean():
    found = errors("    - Conv2d: {filters: 3}\n    - Dense: {units: 3, activaton: relu}\n")
    assert [(p.where, p.path) for p in found] == [("r.yaml:5:7", "model.layers[0]"),
                                                  ("r.yaml:6:25", "model.layers[1].Dense.activaton")]
    assert "unknown Keras layer 'Conv2d'" in found[0].message and "'Conv2D'" in found[0].message
    assert "did you mean 'activation'" in found[1].message


def test_lambda_is_refused_with_the_reason():
    (p,) = errors("    - Lambda: {function: x}\n")
    assert "not allowed" in p.message and "arbitrary Python code" in p.message


def test_keras_constructor_complaint_is_located():
    (p,) = errors("    - Conv2D: {filters: -8, kernel_size: 3}\n")
    assert p.path == "model.layers[0].Conv2D.filters" and "filters=-8" in p.message  # at the argument
    assert p.where == "r.yaml:5:25"  # the value -8


def test_yaml_boolean_where_a_word_was_meant_is_explained():
    (p,) = errors("    - Conv2D: {filters: 8, kernel_size: 3, padding: no}\n")
    assert "yes/no/on/off" in p.message


def test_shape_mismatch_names_the_layer_and_incoming_shape():
    (p,) = errors("    - Flatten\n    - Conv1D: {filters: 3, kernel_size: 2}\n")
    assert p.path == "model.layers[1]"
    assert p.message.startswith("Conv1D cannot take the output of 'flatten' (Flatten), of shape (batch, 64): "
                                "expected min_ndim=3, found ndim=2")


def test_check_counts_macs_of_cnnctl_layers():
    report = check_report(build(recipe_with(
        "    - LocalResponseNormalization\n"
        "    - Conv2D: {filters: 8, kernel_size: 1}\n"
        "    - SqueezeExcite: {reduction: 4}\n"
        "    - GraphConv: {units: 2, connectivity: 4}\n")))
    lrn, conv, se, graph = (layer["macs"] for layer in report["layers"])
    assert lrn == 0 and conv == 64 * 8 * 1
    assert se == 2 * 8 * 2  # squeeze 8 -> 2 and excite 2 -> 8, once per example
    assert graph == 64 * 8 * 2 + 64 * 9 * 2  # X W, then A_hat's 3x3 stencil on the 2-wide side


def test_the_recipe_stage_knows_every_layer_name_the_model_stage_builds():
    """The recipe stage reads the layer names without importing Keras; they must be the builder's."""
    from cnnctl.model.custom_layers import CUSTOM_LAYERS
    from cnnctl.model.objects import REFUSED_LAYERS, layer_classes
    from cnnctl.recipe.keras_names import CNNCTL_LAYERS, layer_names

    assert set(CNNCTL_LAYERS) == set(CUSTOM_LAYERS)
    assert set(layer_classes()) <= layer_names()
    assert set(REFUSED_LAYERS) <= layer_names()  # refused, but still a name a block may not hide
    assert {"Dense", "Conv2D", "Attention", "LSTM", "GraphConv"} <= layer_names()
