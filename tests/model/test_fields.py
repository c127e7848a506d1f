"""The receptive field ``cnnctl check`` reports, against the truth: the input pixels the gradient of an output
position is non-zero on (tf.GradientTape on the built model, random weights, tiny inputs).

The field's ``size`` is, per axis, the longest run of input pixels one output position reads; after a
transposed convolution or an upsampling it differs from position to position (the largest is given), so the
gradient is taken at the central output position and its next neighbours, one period of the pattern.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from cnnctl.model import build, check_report
from cnnctl.recipe import load_recipe_text
from tests.conftest import invoke

CASES = {  # id: (input shape, the recipe's layers)
    "conv1d_valid": ([16, 2], ["Conv1D: {filters: 2, kernel_size: 3}"]),
    "conv1d_causal_dilated": ([16, 2], ["Conv1D: {filters: 2, kernel_size: 3, padding: causal, dilation_rate: 2}"]),
    "conv1d_strided_same": ([16, 2], ["Conv1D: {filters: 2, kernel_size: 4, strides: 2, padding: same}"]),
    "conv2d_same": ([9, 9, 2], ["Conv2D: {filters: 2, kernel_size: 3, padding: same}"]),
    "conv2d_strided_valid": ([11, 11, 1], ["Conv2D: {filters: 2, kernel_size: [3, 2], strides: 2}"]),
    "conv2d_dilated": ([11, 11, 1], ["Conv2D: {filters: 2, kernel_size: 3, dilation_rate: 2, padding: same}"]),
    "depthwise2d_strided": ([10, 10, 2], ["DepthwiseConv2D: {kernel_size: 3, strides: 2, padding: same}"]),
    "depthwise1d": ([16, 2], ["DepthwiseConv1D: {kernel_size: 5}"]),
    "separable2d_dilated": ([12, 12, 2], ["SeparableConv2D: {filters: 2, kernel_size: 3, dilation_rate: 2}"]),
    "separable1d_strided": ([16, 2], ["SeparableConv1D: {filters: 2, kernel_size: 3, strides: 2, padding: same}"]),
    "conv2d_transpose_same": ([6, 6, 2], ["Conv2DTranspose: {filters: 2, kernel_size: 3, strides: 2, padding: same}"]),
    "conv2d_transpose_valid": ([6, 6, 2], ["Conv2DTranspose: {filters: 2, kernel_size: 5, strides: 2}"]),
    "max_pooling2d": ([9, 9, 1], ["MaxPooling2D: {pool_size: 3, strides: 2}"]),
    "max_pooling1d_same": ([12, 1], ["MaxPooling1D: {pool_size: 2, padding: same}"]),
    "average_pooling2d": ([10, 10, 1], ["AveragePooling2D: {pool_size: 2}"]),
    "upsampling2d_nearest": ([6, 6, 1], ["UpSampling2D: {size: 2}"]),
    "upsampling2d_bilinear": ([6, 6, 1], ["UpSampling2D: {size: 2, interpolation: bilinear}"]),
    "upsampling2d_bilinear_3": ([6, 6, 1], ["UpSampling2D: {size: 3, interpolation: bilinear}"]),
    "upsampling1d": ([6, 1], ["UpSampling1D: {size: 3}", "Conv1D: {filters: 1, kernel_size: 2}"]),
    "zero_padding_then_valid": ([8, 8, 1], ["ZeroPadding2D: {padding: [1, 2]}",
                                            "Conv2D: {filters: 1, kernel_size: 3}"]),
    "cropping": ([10, 10, 1], ["Cropping2D: {cropping: [[1, 2], [0, 3]]}", "Conv2D: {filters: 1, kernel_size: 2}"]),
    "graph_conv_grid4": ([7, 7, 2], ["GraphConv: {units: 2, connectivity: 4}"]),
    "graph_conv_grid8": ([7, 7, 2], ["GraphConv: {units: 2, connectivity: 8, sigma: 0.7}"]),
    "graph_conv_grid4_twice": ([9, 9, 1], ["GraphConv: {units: 2, connectivity: 4, normalize: row}",
                                           "GraphConv: {units: 1, connectivity: 4}"]),
    "composition": ([16, 16, 1], [
        "Conv2D: {filters: 2, kernel_size: 3, strides: 2, padding: same}",
        "UpSampling2D: {size: 2, interpolation: bilinear}",
        "Conv2D: {filters: 2, kernel_size: 2}",
        "GraphConv: {units: 2, connectivity: 8}",
        "AveragePooling2D: {pool_size: 2}",
        "Conv2DTranspose: {filters: 1, kernel_size: 3, strides: 2, padding: same}",
    ]),
}


def built_case(shape: list, layers: list):
    body = "".join(f"    - {layer}\n" for layer in layers)
    return build(load_recipe_text(f"name: t\nseed: 1\nmodel:\n  input: {shape}\n  layers:\n{body}", "r.yaml"))


def gradient_extent(model, shape: list, position: tuple) -> tuple:
    """Per axis, first..last input pixel (count) on which the gradient of ``position`` (channels summed) is
    non-zero, over a batch with a spike at each input pixel in turn (so a max picks every pixel once)."""
    spatial = shape[:-1]
    rng = np.random.default_rng(0)
    batch = math.prod(spatial)
    x = rng.uniform(-0.1, 0.1, size=(batch, *shape)).astype("float32")
    for b, pixel in enumerate(itertools.product(*map(range, spatial))):
        x[(b, *pixel)] += 10.0
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=False)
        picked = tf.reduce_sum(y[(slice(None), *position)])
    grad = tape.gradient(picked, x).numpy()
    reached = np.argwhere(np.abs(grad).sum(axis=(0, grad.ndim - 1)) > 0)
    return tuple(int(reached[:, i].max() - reached[:, i].min() + 1) for i in range(len(spatial)))


@pytest.mark.parametrize("case", CASES)
def test_reported_field_is_the_gradient_support(case):
    shape, layers = CASES[case]
    built = built_case(shape, layers)
    field = check_report(built)["receptive_field"]
    out = tuple(built.model(np.zeros((1, *shape), "float32")).shape[1:-1])
    period = 3  # covers every pattern above (strides and upsampling factors 2 and 3)
    centres = itertools.product(*[range(n // 2 - 1, n // 2 - 1 + period) for n in out])
    extents = [gradient_extent(built.model, shape, p) for p in centres]
    truth = [max(e[i] for e in extents) for i in range(len(out))]
    assert field["size"] == truth, (field, truth)
    assert field["whole_input"] is False


def test_a_layer_mixing_every_position_makes_the_field_the_whole_input():
    built = built_case([6, 6, 4], ["Conv2D: {filters: 4, kernel_size: 3, padding: same}",
                                   "SqueezeExcite: {reduction: 2}"])
    assert check_report(built)["receptive_field"] == {"layer": "squeeze_excite", "size": [6, 6], "stride": [1, 1],
                                                     "whole_input": True}


def test_a_layer_that_changes_the_axes_ends_the_field():
    built = built_case([8, 8, 1], ["Conv2D: {filters: 1, kernel_size: 3}", "Reshape: {target_shape: [6, 6]}",
                                   "LSTM: {units: 2}"])
    assert check_report(built)["receptive_field"]["layer"] == "conv2d"


def test_check_prints_graph_conv_field():
    out = invoke("check", "recipes/digits_graph.yaml")
    assert "receptive field of graph_conv: 3x3 input pixels, stride 1x1" in out
