"""Every TensorBoard artifact of a run, read back with TensorBoard's own reader (EventAccumulator).

Short real runs on digits (a Conv2D model, 128 per batch, a few seconds each): scalars
against history.csv, the learning rate, the graph, histograms against the saved
weights, the input grid, the conv filters against the saved kernel, the confusion
matrix against the saved model's validation predictions, the hparams, the profiler,
and the switches that turn each of them off. The image-making helpers are tested on
their own without training.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from cnnctl import train
from cnnctl.data.pipeline import Datasets
from cnnctl.pictures import font
from cnnctl.recipe import load_recipe_text
from cnnctl.run import Run
from cnnctl.serving.confusion import confusion_matrix, render_confusion, summary
from cnnctl.tensorboard.callbacks import (
    CONFUSION_TAG,
    FILTERS_TAG,
    INPUTS_TAG,
    EpochImages,
    confusion_applies,
    tensorboard_callbacks,
    validation_predictions,
)
from cnnctl.tensorboard.hparams import hparam_values, write_hparams
from cnnctl.tensorboard.images import filter_tiles, first_conv, shows_images, tile_grid
from tests.conftest import datasets_of

VALIDATION_EXAMPLES = 180  # digits, 10 % held out for validation (stratified)

CONV = """
name: tb
data:
  batch_size: 128
  augment: [{RandomTranslation: {height_factor: 0.25, width_factor: 0.25}}]
model:
  input: [8, 8, 1]
  layers:
    - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}
    - Flatten
    - Dense: {units: 10, activation: softmax}
train:
  epochs: 3
  optimizer: {Adam: {learning_rate: 1.0e-3}}
  callbacks: [{ReduceLROnPlateau: {monitor: val_loss, factor: 0.5, patience: 1, min_delta: 10.0}}]
"""


def make_recipe(text: str, log: str = ""):
    return load_recipe_text(textwrap.dedent(text).lstrip() + log, "recipe.yaml")


def events(path) -> EventAccumulator:
    accumulator = EventAccumulator(str(path), size_guidance={"tensors": 0})  # 0: keep every event
    accumulator.Reload()
    return accumulator


def tensor_tags(path) -> set[str]:
    return set(events(path).Tags()["tensors"]) if path.exists() else set()


def history(run) -> list[dict]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def scalars(acc: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    found = acc.Tensors(tag)
    return [e.step for e in found], [float(_array(e).item()) for e in found]


def _array(event):
    import tensorflow as tf

    return tf.make_ndarray(event.tensor_proto)


def images(acc: EventAccumulator, tag: str) -> list[tuple[int, np.ndarray]]:
    """(step, decoded RGB pixels) of each image written under ``tag``; the PNG's size is checked."""
    out = []
    for event in acc.Tensors(tag):
        width, height, png = _array(event)[:3]
        with Image.open(io.BytesIO(png)) as decoded:
            assert decoded.format == "PNG" and decoded.size == (int(width), int(height))
            out.append((event.step, np.asarray(decoded.convert("RGB"))))
    return out


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    """Every default on: 3 epochs, augmentation, ReduceLROnPlateau halving the rate after epochs 2 and 3."""
    result = train(make_recipe(CONV), runs_dir=tmp_path_factory.mktemp("runs"), progress=False)
    return result.run


@pytest.mark.slow
def test_scalars_per_epoch_for_train_and_validation(conv_run):
    rows = history(conv_run)
    train_events, validation_events = events(conv_run / "logs" / "train"), events(conv_run / "logs" / "validation")
    for acc, prefix in ((train_events, ""), (validation_events, "val_")):
        for name in ("loss", "accuracy"):
            steps, values = scalars(acc, f"epoch_{name}")
            assert steps == [0, 1, 2]  # one per epoch, never per batch
            assert values == pytest.approx([row[prefix + name] for row in rows], rel=1e-6)
    assert not {t for t in train_events.Tags()["tensors"] if t.startswith("batch_")}


@pytest.mark.slow
def test_learning_rate_is_histories_once(conv_run):
    steps, values = scalars(events(conv_run / "logs" / "train"), "epoch_learning_rate")
    # the rate each epoch trained with, as history.csv has it; Keras's stock callback, running after
    # ReduceLROnPlateau, would log the rate already halved ([1e-3, 5e-4, 2.5e-4])
    assert steps == [0, 1, 2]
    assert values == pytest.approx([row["learning_rate"] for row in history(conv_run)]) == [1e-3, 1e-3, 5e-4]
    others = [(where, tag) for where in ("", "validation") for tag in tensor_tags(conv_run / "logs" / where)
              if "learning_rate" in tag]
    assert others == []


@pytest.mark.slow
def test_graph_and_keras_model(conv_run):
    acc = events(conv_run / "logs" / "train")
    assert acc.Tags()["graph"]
    graph = acc.Graph()
    ops = {node.op for node in graph.node}
    assert "Conv2D" in ops and "MatMul" in ops and "Softmax" in ops, sorted(ops)
    model = keras.saving.load_model(conv_run / "model.keras")
    config = json.loads(_array(acc.Tensors("keras")[0]).item())  # Keras's conceptual graph: the model's JSON
    assert [layer["config"]["name"] for layer in config["config"]["layers"][1:]] == [x.name for x in model.layers]


@pytest.mark.slow
def test_histograms_of_every_weight_match_the_saved_weights(conv_run):
    acc = events(conv_run / "logs" / "train")
    model = keras.saving.load_model(conv_run / "model.keras")
    tags = [t for t in acc.Tags()["tensors"] if t.endswith("/histogram")]
    assert len(tags) == len(model.weights) == 4
    for weight in model.weights:  # tags: <model name>/<layer>/<weight>/histogram
        tag, = (t for t in tags if t.endswith(f"/{weight.path}/histogram"))
        found = acc.Tensors(tag)
        assert [e.step for e in found] == [0, 1, 2], tag
        buckets = _array(found[-1])  # (k, 3): left edge, right edge, count
        values = keras.ops.convert_to_numpy(weight)
        assert buckets[:, 2].sum() == values.size
        assert buckets[0, 0] == pytest.approx(values.min(), abs=1e-6)
        assert buckets[-1, 1] == pytest.approx(values.max(), abs=1e-6)


@pytest.mark.slow
def test_input_grid_shows_augmented_inputs_each_epoch(conv_run):
    grids = images(events(conv_run / "logs"), INPUTS_TAG)
    assert [step for step, _ in grids] == [0, 1, 2]
    first = grids[0][1]
    # 16 digits of 8x8 enlarged to 64x64, 4 x 4 with 2-pixel gaps, a 14-pixel caption under each
    assert first.shape == (4 * (64 + 14 + 2) + 2, 4 * (64 + 2) + 2, 3)
    assert not np.array_equal(first, grids[1][1]) and not np.array_equal(grids[1][1], grids[2][1])  # augmented
    tile = first[2:66, 2:66, 0]
    assert tile.min() == 0 and tile.max() == 255  # each image rescaled to the full range for display


@pytest.mark.slow
def test_conv_filters_image_is_the_saved_kernel(conv_run):
    found = images(events(conv_run / "logs"), FILTERS_TAG)
    assert [step for step, _ in found] == [0, 1, 2]
    model = keras.saving.load_model(conv_run / "model.keras")
    conv = first_conv(model)
    kernel = keras.ops.convert_to_numpy(conv.kernel)  # (3, 3, 1, 8)
    last = found[-1][1]
    # 8 filters: 3 x 3 tiles of 33 x 33 (3 x 3 kernels enlarged 11 times), 2-pixel gaps
    assert last.shape == (3 * 35 + 2, 3 * 35 + 2, 3)
    assert np.array_equal(last, tile_grid(filter_tiles(conv), min_side=32))
    first_filter = kernel[:, :, 0, 0]
    scaled = np.rint((first_filter - first_filter.min()) / np.ptp(first_filter) * 255)
    shown = last[2 + 5: 2 + 33: 11, 2 + 5: 2 + 33: 11, 0]  # the centre pixel of each enlarged weight
    assert np.array_equal(shown, scaled)


@pytest.mark.slow
def test_confusion_matrix_each_epoch_is_the_models_on_validation(conv_run):
    found = images(events(conv_run / "logs"), CONFUSION_TAG)
    assert [step for step, _ in found] == [0, 1, 2]
    assert not np.array_equal(found[0][1], found[2][1])  # it changes as the model trains
    recipe = make_recipe(CONV)
    data = datasets_of(recipe)
    model = keras.saving.load_model(conv_run / "model.keras")
    y_true, y_pred = validation_predictions(model, data)
    cm = confusion_matrix(y_true, y_pred, 10)
    assert cm.sum() == VALIDATION_EXAMPLES == data.sizes["validation"]
    assert summary(cm)["accuracy"] == pytest.approx(history(conv_run)[-1]["val_accuracy"], abs=1e-6)
    title = f"validation, epoch 3: {VALIDATION_EXAMPLES} examples, accuracy {summary(cm)['accuracy']:.4f}"
    assert np.array_equal(found[-1][1], render_confusion(cm, data.class_names, title=title))


@pytest.mark.slow
def test_hparams_hold_the_recipe_values(conv_run):
    acc = events(conv_run / "logs")
    start = hparams_metadata.parse_session_start_info_plugin_data(
        acc.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content)
    values = {k: (v.string_value or v.number_value or v.bool_value) for k, v in start.hparams.items()}
    model = keras.saving.load_model(conv_run / "model.keras")
    assert values["data.batch_size"] == 128 and values["train.epochs"] == 3 and values["seed"] == 42
    assert values["train.optimizer"] == "Adam" and values["train.learning_rate"] == 1e-3
    assert values["train.callbacks"] == "ReduceLROnPlateau" and values["data.augment"] == "RandomTranslation"
    assert values["model.params"] == model.count_params() and values["data.source"] == "digits"
    assert values["run"] == f"tb/{conv_run.path.name}" and start.group_name == values["run"]
    experiment = hparams_metadata.parse_experiment_plugin_data(
        acc.SummaryMetadata(hparams_metadata.EXPERIMENT_TAG).plugin_data.content)
    assert {h.name for h in experiment.hparam_infos} == set(values)
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    assert metrics == {(group, f"epoch_{name}") for group in ("train", "validation") for name in ("loss", "accuracy")}
    for group, tag in metrics:  # every declared metric is a scalar the run wrote, where it says
        assert tag in tensor_tags(conv_run / "logs" / group)


def declared_metrics(run) -> set[tuple[str, str]]:
    experiment = hparams_metadata.parse_experiment_plugin_data(
        events(run / "logs").SummaryMetadata(hparams_metadata.EXPERIMENT_TAG).plugin_data.content)
    return {(m.name.group, m.name.tag) for m in experiment.metric_infos}


TWO_OUTPUTS = """
name: early
data: {batch_size: 128}
model:
  input: [8, 8, 1]
  graph:
    conv: {Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu}}
    flat: Flatten
    early: {Dense: {units: 10, activation: softmax}, from: flat}
    final: {Dense: {units: 10, activation: softmax}, from: flat}
  outputs: [early, final]
train:
  epochs: 1
  metrics: {early: [accuracy], final: [accuracy, {SparseTopKCategoricalAccuracy: {k: 3, name: top3}}]}
  monitor: null
"""


@pytest.mark.slow
def test_hparams_declare_the_metrics_a_two_output_run_logs(tmp_path):
    run = train(make_recipe(TWO_OUTPUTS), runs_dir=tmp_path, progress=False).run
    names = ["loss", "early_loss", "final_loss", "early_accuracy", "final_accuracy", "final_top3"]
    assert declared_metrics(run) == {(group, f"epoch_{name}") for group in ("train", "validation") for name in names}
    for group in ("train", "validation"):  # every scalar Keras wrote per epoch is a column, and nothing else
        logged = {t for t in tensor_tags(run / "logs" / group) if t.startswith("epoch_") and t != "epoch_learning_rate"}
        assert logged == {tag for g, tag in declared_metrics(run) if g == group}


@pytest.mark.slow
def test_mixed_class_weight_keys_train_with_hparams(tmp_path):
    """{0: 2.0, "1": 3}: the schema takes it and training uses it; the hparams once ended the run (sorting keys)."""
    text = CONV.replace("epochs: 3", "epochs: 1") + '  class_weight: {0: 2.0, "1": 3}\n'
    run = train(make_recipe(text), runs_dir=tmp_path, progress=False).run
    start = hparams_metadata.parse_session_start_info_plugin_data(
        events(run / "logs").SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content)
    assert start.hparams["train.class_weight"].string_value == '{"0": 2.0, "1": 3}'


@pytest.mark.slow
def test_switches_off_and_profiler_on(tmp_path):
    log = """log:
  tensorboard: {histogram_freq: 0, write_graph: false, input_images: 4, conv_filters: false,
                confusion_matrix: false, hparams: false, profile_batch: [2, 3]}
"""
    run = train(make_recipe(CONV.replace("  augment:", "  #"), log), runs_dir=tmp_path,
                progress=False).run
    train_tags = tensor_tags(run / "logs" / "train")
    assert {"epoch_loss", "epoch_learning_rate"} <= train_tags
    assert not [t for t in train_tags if t.endswith("/histogram")] and "keras" not in train_tags
    assert not events(run / "logs" / "train").Tags()["graph"]
    assert tensor_tags(run / "logs") == {INPUTS_TAG}
    grids = images(events(run / "logs"), INPUTS_TAG)
    assert grids[0][1].shape == (2 * (64 + 14 + 2) + 2, 2 * (64 + 2) + 2, 3)  # 4 inputs: 2 x 2
    assert all(np.array_equal(grids[0][1], g) for _, g in grids)  # no augmentation: the same each epoch
    traces = list((run / "logs" / "train" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("switch", ["false", "{enabled: false}"])
def test_tensorboard_false_writes_nothing(tmp_path, switch):
    run = train(make_recipe(CONV.replace("epochs: 3", "epochs: 1"), f"log: {{tensorboard: {switch}}}\n"),
                runs_dir=tmp_path, progress=False).run
    assert not (run / "logs").exists()
    assert (run / "history.csv").exists()


@pytest.mark.slow
def test_dense_model_without_validation_has_no_filters_or_matrix(tmp_path):
    text = CONV.replace("    - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}\n", "")
    text = text.replace("  batch_size: 128\n", "  batch_size: 128\n  split: {validation: 0.0, test: 0.2}\n")
    text = text.replace("epochs: 3", "epochs: 1").replace("  callbacks:", "  monitor: null\n  #")
    run = train(make_recipe(text), runs_dir=tmp_path, progress=False).run
    assert tensor_tags(run / "logs") == {INPUTS_TAG, hparams_metadata.EXPERIMENT_TAG,
                                         hparams_metadata.SESSION_START_INFO_TAG}
    assert not (run / "logs" / "validation").exists()
    assert "epoch_loss" in tensor_tags(run / "logs" / "train")


# --- the parts on their own, without training ---


def _data(validation: int = 10, classes: int = 3) -> Datasets:
    from cnnctl.data.preprocess import Augmentation, Preprocessing
    from cnnctl.data.record import Normalization, StoredForm

    stored = StoredForm((8, 8, 1))
    return Datasets(splits={}, sizes={"train": 10, "validation": validation, "test": 0},
                    class_names=[f"c{i}" for i in range(classes)], element_shape=(8, 8, 1), stored=stored,
                    preprocessing=Preprocessing(Augmentation([], []), Normalization(), stored, seed=42))


def test_confusion_matrix_applies_to_one_class_vector_only():
    image = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(image)
    scores = keras.layers.Dense(3, activation="softmax")(flat)
    assert confusion_applies(keras.Model(image, scores), _data())
    assert not confusion_applies(keras.Model(image, scores), _data(validation=0))  # no validation split
    assert not confusion_applies(keras.Model(image, [scores, scores]), _data())  # several outputs
    assert not confusion_applies(keras.Model(image, keras.layers.Dense(1, activation="sigmoid")(flat)),
                                 _data(classes=2))  # one probability, not a class vector
    assert not confusion_applies(keras.Model(image, keras.layers.Conv2D(3, 1)(image)), _data())  # per pixel


@pytest.mark.parametrize(("layer", "shape", "tiles"), [
    (keras.layers.Conv2D(6, 3), (8, 8, 1), (6, 3, 3, 1)),
    (keras.layers.Conv2D(4, 5), (8, 8, 3), (4, 5, 5, 3)),  # RGB filters stay RGB
    (keras.layers.Conv2D(4, 3), (8, 8, 5), (4, 3, 3, 1)),  # other channel counts are averaged
    (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3), (6, 3, 3, 1)),
    (keras.layers.SeparableConv2D(7, 3), (8, 8, 2), (2, 3, 3, 1)),  # its depthwise kernels
    (keras.layers.Conv1D(5, 4), (16, 3), (5, 3, 4, 1)),  # input channels x kernel size
])
def test_filter_tiles_of_each_convolution(layer, shape, tiles):
    model = keras.Sequential([keras.Input(shape), layer])
    assert first_conv(model) is layer
    out = filter_tiles(layer)
    assert out.shape == tiles
    assert out.min() >= 0.0 and out.max() <= 1.0
    flat = out.reshape(len(out), -1)
    assert np.allclose(flat.min(axis=1), 0.0) and np.allclose(flat.max(axis=1), 1.0)  # each scaled on its own


def test_first_conv_looks_inside_nested_models_and_skips_others():
    inner = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="inner_conv")])
    outer = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(0.5), inner])
    assert first_conv(outer).name == "inner_conv"
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert first_conv(dense) is None
    assert first_conv(keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2DTranspose(2, 3)])) is None


def test_tile_grid_sizes_and_captions():
    tiles = np.linspace(0, 1, 5 * 8 * 8).reshape(5, 8, 8, 1)
    grid = tile_grid(tiles)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 66 + 2, 3 * 66 + 2, 3)  # 5 tiles: 3 columns, 2 rows
    captioned = tile_grid(tiles, ["zero", "one", "two", "three", "four"])
    assert captioned.shape == (2 * 80 + 2, 3 * 66 + 2, 3)
    assert not np.array_equal(captioned[66:80], np.full_like(captioned[66:80], 255))  # text under the tiles
    big = tile_grid(np.zeros((2, 400, 200, 3)))  # shrunk to 160 pixels on the long side
    assert big.shape == (160 + 4, 2 * 82 + 2, 3)


def test_captions_are_drawn_in_the_confusion_matrix_font():
    from PIL import ImageDraw

    grid = tile_grid(np.zeros((1, 8, 8, 1)), ["seven"])  # one 64 x 64 tile at (2, 2), its caption under it
    expected = Image.new("RGB", (grid.shape[1], grid.shape[0]), (255, 255, 255))
    ImageDraw.Draw(expected).text((2 + 32, 2 + 64 + 1), "seven", fill=(0, 0, 0), font=font(10), anchor="ma")
    caption = grid[66:80]
    assert caption.min() < 64 and np.array_equal(caption, np.asarray(expected)[66:80])


def test_no_callbacks_when_off_and_no_batch_hooks_when_on(tmp_path):
    off = make_recipe(CONV, "log: {tensorboard: false}\n")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    assert tensorboard_callbacks(off, Run(tmp_path), model, _data(classes=10)) == []
    on = make_recipe(CONV, "log: {tensorboard: {input_images: 0}}\n")
    callbacks = tensorboard_callbacks(on, Run(tmp_path), model, _data(classes=10))
    assert len(callbacks) == 2
    for callback in callbacks:  # Keras runs ahead of per-batch callbacks only when none has a batch hook
        for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_end", "on_test_batch_end"):
            assert getattr(getattr(callback, hook), "_is_default", False), (type(callback).__name__, hook)
    assert not any(tmp_path.iterdir())  # nothing written before training starts


AWKWARD = CONV.replace("optimizer: {Adam: {learning_rate: 1.0e-3}}", """optimizer:
    Adam: {learning_rate: 1.0e-3, name: 2020-01-01, global_clipnorm: .nan, extra: {1: a, "1": b, x: !!binary aGk=}}
  loss: {SparseCategoricalCrossentropy: {from_logits: false, name: {2: two, b: 1, null: 0}}}""") + \
    '  class_weight: {0: 2.0, "1": 3, c2: 1}\n'


def test_hparam_values_take_any_value_the_schema_accepts(tmp_path):
    """Mixed int, str and null keys, a key given as both, dates, bytes, NaN: text, the same for the same recipe."""
    import datetime

    recipe = make_recipe(AWKWARD)
    args = recipe.train.optimizer["Adam"]
    assert isinstance(args["name"], datetime.date) and args["extra"]["x"] == b"hi"
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    values = hparam_values(recipe, Run(tmp_path / "tb" / "t0"), model, _data(classes=10))
    assert all(isinstance(v, (str, int, float, bool)) for v in values.values()), values
    assert values["train.class_weight"] == '{"0": 2.0, "1": 3, "c2": 1}'
    assert values["train.optimizer_args"] == \
        """{"extra": {"'1'": "b", "'x'": "b'hi'", "1": "a"}, "global_clipnorm": NaN, "name": "2020-01-01"}"""
    assert values["train.loss"] == \
        '{"SparseCategoricalCrossentropy": {"from_logits": false, "name": {"2": "two", "None": 0, "b": 1}}}'
    assert hparam_values(make_recipe(AWKWARD), Run(tmp_path / "tb" / "t0"), model, _data(classes=10)) == values
    import tensorflow as tf

    with tf.summary.create_file_writer(str(tmp_path / "logs")).as_default():
        write_hparams(recipe, Run(tmp_path / "tb" / "t0"), model, _data(classes=10))
    start = hparams_metadata.parse_session_start_info_plugin_data(
        events(tmp_path / "logs").SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content)
    assert start.hparams["train.class_weight"].string_value == values["train.class_weight"]


@pytest.mark.parametrize(("shape", "images"), [
    ((8, 8, 1), True), ((32, 32, 3), True), ((32, 32, 4), True), ((None, None, 3), True),
    ((8, 8), False),  # (h, w) or (time steps, features): cannot be told apart, so never drawn
    ((28, 28), False), ((16, 3), False), ((8, 8, 2), False), ((4, 8, 8, 1), False), ((64,), False),
])
def test_shows_images_only_for_h_w_c_with_1_3_or_4_channels(shape, images):
    assert shows_images(shape) is images


def test_an_lstm_over_digit_rows_gets_no_input_grid(tmp_path):
    """Digits as 8 rows of 8 pixels (input [8, 8]): a sequence to the model, so not drawn as images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "digits.npz", x=digits.images.astype("float32") / 16, y=digits.target)
    recipe = make_recipe(CONV.replace("input: [8, 8, 1]", "input: [8, 8]").replace(
        "    - Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}\n    - Flatten\n",
        "    - LSTM: {units: 8}\n").replace("  augment:", f"  source: npz\n  path: {tmp_path / 'digits.npz'}\n  #"))
    data = datasets_of(recipe)
    assert tuple(data.element_shape) == (8, 8) and "train" in data.raw
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.LSTM(8), keras.layers.Dense(10)])
    callback = EpochImages(str(tmp_path), recipe=recipe, run=Run(tmp_path), model=model, data=data)
    assert callback.inputs is None and callback.conv is None
    image_recipe = make_recipe(CONV.replace("  augment:", "  #"))
    image_model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    grid = EpochImages(str(tmp_path), recipe=image_recipe, run=Run(tmp_path), model=image_model,
                       data=datasets_of(image_recipe)).inputs
    assert grid is not None and grid[0].shape == (16, 8, 8, 1)
