"""The classic recipes without a keras.applications twin (AlexNet, VGG-11, GoogLeNet, ResNet-20), each
checked against its paper: parameters and multiply-adds computed here by formula from the paper's layer
shapes, never read back from the model, then compared with what `cnnctl check` reports."""

import keras
import numpy as np
import pytest

from cnnctl.model import check_report
from tests.conftest import built_recipe

pytestmark = pytest.mark.xdist_group("zoo")  # one worker builds the zoo once for all three files


def checked(name: str):
    """The built recipe (shared with the zoo's other tests) and its `cnnctl check --json` report."""
    built = built_recipe(name)
    return built, check_report(built)


def conv_weights(kernel: int, cin: int, cout: int, groups: int = 1) -> int:
    """Weights of a kernel x kernel convolution, without its biases; each group reads cin / groups maps."""
    return kernel * kernel * (cin // groups) * cout


def shapes_of(report: dict, cls: str) -> list[tuple]:
    return [tuple(layer["output_shape"]) for layer in report["layers"] if layer["class"] == cls]


@pytest.mark.slow
def test_alexnet_has_the_papers_maps_parameters_and_macs():
    built, report = checked("alexnet")
    # Section 3.5 and figure 2: (kernel, input maps, output maps, towers read, output side). conv2, conv4 and
    # conv5 read only the maps of their own GPU (groups 2); conv3 and the dense layers read both.
    convs = [(11, 3, 96, 1, 55), (5, 96, 256, 2, 27), (3, 256, 384, 1, 13), (3, 384, 384, 2, 13), (3, 384, 256, 2, 13)]
    dense = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    params = (sum(conv_weights(k, cin, cout, g) + cout for k, cin, cout, g, _ in convs)
              + sum(n_in * n_out + n_out for n_in, n_out in dense))
    assert report["params"] == params == 60_965_224  # "60 million"; 62,378,344 without the towers
    macs = (sum(side * side * conv_weights(k, cin, cout, g) for k, cin, cout, g, side in convs)
            + sum(n_in * n_out for n_in, n_out in dense))
    assert report["macs"] == macs  # 0.72 G
    assert 0.7e9 < macs < 0.75e9
    assert shapes_of(report, "Conv2D") == [(side, side, cout) for _, _, cout, _, side in convs]
    assert shapes_of(report, "MaxPooling2D") == [(27, 27, 96), (13, 13, 256), (6, 6, 256)]  # 3x3/2: overlapping
    kinds = [layer["class"] for layer in report["layers"]]
    assert kinds[1] == kinds[4] == "LocalResponseNormalization"  # after conv1's and conv2's ReLU, before the pools
    assert [layer.rate for layer in built.model.layers if layer.name.endswith("dropout")] == [0.5, 0.5]
    assert tuple(built.model.output.shape) == (None, 1000)


@pytest.mark.slow
def test_vgg11_is_configuration_a_of_the_paper():
    built, report = checked("vgg11")
    config_a = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]  # table 1, column A
    params, macs, cin, side, shapes = 0, 0, 3, 224, []
    for item in config_a:
        if item == "M":
            side //= 2
            continue
        params += conv_weights(3, cin, item) + item
        macs += side * side * conv_weights(3, cin, item)
        cin = item
        shapes.append((side, side, item))
    for n_in, n_out in [(7 * 7 * 512, 4096), (4096, 4096), (4096, 1000)]:
        params += n_in * n_out + n_out
        macs += n_in * n_out
    assert report["params"] == params == 132_863_336
    assert round(params / 1e6) == 133  # table 2: 133 million
    assert report["macs"] == macs and round(macs / 1e9, 1) == 7.6
    assert shapes_of(report, "Conv2D") == shapes
    assert [layer.rate for layer in built.model.layers if layer.name.endswith("dropout")] == [0.5, 0.5]


# GoogLeNet's table 1, one row per inception module: its output (side, depth), the filter counts
# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) and the table's params (K) and ops (M) columns.
INCEPTION = {
    "3a": (28, 256, (64, 96, 128, 16, 32, 32), 159, 128),
    "3b": (28, 480, (128, 128, 192, 32, 96, 64), 380, 304),
    "4a": (14, 512, (192, 96, 208, 16, 48, 64), 364, 73),
    "4b": (14, 512, (160, 112, 224, 24, 64, 64), 437, 88),
    "4c": (14, 512, (128, 128, 256, 24, 64, 64), 463, 100),
    "4d": (14, 528, (112, 144, 288, 32, 64, 64), 580, 119),
    "4e": (14, 832, (256, 160, 320, 32, 128, 128), 840, 170),
    "5a": (7, 832, (256, 160, 320, 32, 128, 128), 1072, 54),
    "5b": (7, 1024, (384, 192, 384, 48, 128, 128), 1388, 71),
}


def inception_weights(cin: int, filters: tuple[int, ...]) -> int:
    n1, r3, n3, r5, n5, proj = filters
    return (conv_weights(1, cin, n1) + conv_weights(1, cin, r3) + conv_weights(3, r3, n3)
            + conv_weights(1, cin, r5) + conv_weights(5, r5, n5) + conv_weights(1, cin, proj))


@pytest.mark.slow  # 2-4 s here, under other helpers' load
def test_googlenet_has_table_1s_shapes_and_parameters():
    built, report = checked("googlenet")
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert tuple(by_name["conv1"]["output_shape"]) == (112, 112, 64)
    assert tuple(by_name["conv2"]["output_shape"]) == (56, 56, 192)
    assert [tuple(by_name[f"pool{i}_max_pooling2d"]["output_shape"]) for i in (1, 2, 3, 4)] == [
        (56, 56, 64), (28, 28, 192), (14, 14, 480), (7, 7, 832)]

    # Stem: conv 7x7/2 (3 -> 64), then conv 1x1 (64 -> 64) and 3x3 (64 -> 192); head: linear 1024 -> 1000.
    weights = conv_weights(7, 3, 64) + conv_weights(1, 64, 64) + conv_weights(3, 64, 192) + 1024 * 1000
    biases = 64 + 64 + 192 + 1000
    cin = 192
    for module, (side, depth, filters, _, table_mops) in INCEPTION.items():
        assert sum(filters) - filters[1] - filters[3] == depth  # the table's output depth: the concatenation's
        layers = [layer for name, layer in by_name.items() if name.startswith(f"inception_{module}_")]
        assert tuple(layers[-1]["output_shape"]) == (side, side, depth), module
        module_weights = inception_weights(cin, filters)
        assert sum(layer["params"] for layer in layers) == module_weights + sum(filters), module
        module_macs = sum(layer["macs"] for layer in layers)
        assert module_macs == side * side * module_weights
        # The table's ops column is weights x positions to its rounding, but for 5a: its 54M (and 1072K)
        # are ~5 % more than 5a's own filter counts give. (Its params column is rougher: 4c 463K for 497.5K.)
        if module != "5a":
            assert abs(module_macs / 1e6 - table_mops) <= 0.015 * table_mops, module
        weights, biases, cin = weights + module_weights, biases + sum(filters), depth
    assert report["params"] == weights + biases == 6_998_552
    assert tuple(built.model.output.shape) == (None, 1000)
    # Table 1's params column sums to 6,797.7 "K" (the "~6.8 M"): weights only, K = 1,024. By the filter
    # counts the weights are 6,990,272 = 6,826.4 K; the 0.4 % between them is the column's rounding, its
    # 5a and 4c rows, and conv1, which it gives as 2.7K (7x7x3x64 is 9.2K). Biases add 8,280.
    column = 2.7 + 112 + sum(row[3] for row in INCEPTION.values()) + 1000
    assert round(column / 1000, 1) == round(weights / 1024 / 1000, 1) == 6.8
    assert abs(weights / 1024 - column) < 0.005 * column
    # Multiply-adds: the ops column sums to ~1.5 G; the recipe's 1.58 G differs by conv1 (table: 34M,
    # 112x112 x 9,408 = 118M).
    assert report["macs"] == sum(layer["macs"] for layer in report["layers"])
    assert report["macs"] - by_name["conv1"]["macs"] + 34e6 == pytest.approx(1.5e9, rel=0.01)
    assert [layer.rate for layer in built.model.layers if layer.name.startswith("dropout")] == [0.4]


def test_resnet20_has_option_a_shortcuts_and_the_papers_parameters():
    built, report = checked("resnet20")
    # Section 4.2: a 3x3 conv (3 -> 16), then 3 stages of n = 3 blocks of two 3x3 convs, 16/32/64 maps;
    # 6n + 2 = 20 layers with weights. Convs without bias, each followed by batch norm (gamma, beta trainable;
    # moving mean and variance not). Option A shortcuts have no parameters.
    convs = [(3, 16)] + [(16, 16)] * 6 + [(16, 32)] + [(32, 32)] * 5 + [(32, 64)] + [(64, 64)] * 5
    sides = [32] * 7 + [16] * 6 + [8] * 6
    trainable = sum(conv_weights(3, cin, cout) + 2 * cout for cin, cout in convs) + 64 * 10 + 10
    moving = sum(2 * cout for _, cout in convs)
    assert report["trainable_params"] == trainable == 269_722
    assert report["params"] == trainable + moving == 271_098
    assert round(trainable / 1e6, 2) == round(report["params"] / 1e6, 2) == 0.27  # table 6: 0.27M
    macs = sum(side * side * conv_weights(3, *conv) for conv, side in zip(convs, sides, strict=True)) + 64 * 10
    assert report["macs"] == macs and 40e6 < macs < 41e6
    assert len(shapes_of(report, "Conv2D")) == 19 and len(shapes_of(report, "Add")) == 9  # no 1x1 projection
    assert shapes_of(report, "Add")[2::3] == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]

    # Option A where a stage halves the maps: the shortcut is x[:, ::2, ::2, :] with as many zero channels
    # appended; the strided conv's windows are centred on those even pixels (1 pixel of padding each side).
    reads = {call.key: call.inputs for call in built.graph.calls}
    image = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    for block_input, block in (("stage1_3_out", "stage2_block1"), ("stage2_2_out", "stage3_block1")):
        probe = keras.Model(built.model.input, [built.tensors[block_input], built.tensors[f"{block}_shortcut"]])
        x, shortcut = (np.asarray(t) for t in probe(image, training=False))
        subsampled = x[:, ::2, ::2, :]
        np.testing.assert_array_equal(shortcut, np.concatenate([subsampled, np.zeros_like(subsampled)], axis=-1))
        assert reads[f"{block}_pad"] == (block_input,)  # the residual branch reads the same input
