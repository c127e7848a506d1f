"""Every export format round-tripped through its own runtime, on short real runs.

Each artifact is loaded the way a user would load it (tf.saved_model.load, Keras in
safe mode, the TFLite interpreter, ONNX Runtime), fed examples as stored, and its
outputs compared with the trained Keras model applied to the examples the training
pipeline preprocessed: so the preprocessing inside the export is checked too. One
digits run (with export: in its recipe) is shared by most tests.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnctl import train
from cnnctl.data.record import read_record
from cnnctl.errors import CnnctlError, RecipeError, UserError
from cnnctl.exports.format import Format
from cnnctl.exports.formats.tflite import QUANTIZED
from cnnctl.exports.writer import export_run
from cnnctl.recipe import load_recipe, load_recipe_text
from cnnctl.recipe.load import dump_recipe
from cnnctl.registry import FORMATS
from cnnctl.run import Run
from tests.conftest import cli, datasets_of
from tests.datafiles import write_image_dir
from tests.tolerance import TOLERANCE, assert_close, most_diff

CNN = """
name: {name}
data: {{batch_size: 64}}
model:
  input: [8, 8, 1]
  layers:
    - Conv2D: {{filters: 8, kernel_size: 3, padding: same}}
    - BatchNormalization: {{}}
    - ReLU
    - Flatten
    - Dense: {{units: 32, activation: relu}}
    - Dropout: {{rate: 0.3}}
    - Dense: {{units: 10, activation: softmax}}
train:
  epochs: {epochs}
  optimizer: {{Adam: {{learning_rate: {lr}}}}}
{extra}
log: {{tensorboard: false}}
"""


def make_run(runs, name: str, *, epochs: int = 4, lr: str = "3.0e-3", extra: str = "", model: str | None = None):
    text = CNN.format(name=name, epochs=epochs, lr=lr, extra=extra) if model is None else model
    return train(load_recipe_text(textwrap.dedent(text), f"{name}.yaml"), runs_dir=runs, progress=False).run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A digits CNN (batch norm, dropout) whose recipe exports savedmodel and keras after training."""
    return make_run(tmp_path_factory.mktemp("runs"), "digits", extra="export: [savedmodel, keras]")


@pytest.fixture(scope="module")
def reference(run):
    """Held-out examples as stored, their labels, and the trained model on the pipeline's preprocessing of them."""
    data = datasets_of(load_recipe(str(run / "recipe.yaml")), read_record(run).normalization)
    raw, labels = data.sample("test", 1000, raw=True)
    preprocessed, same_labels = data.sample("test", 1000)
    np.testing.assert_array_equal(labels, same_labels)  # one order for both
    model = keras.saving.load_model(run / "model.keras")
    return raw.astype("float32"), labels, np.asarray(model(preprocessed, training=False))


def exports(run) -> dict:
    return json.loads((run / "metrics.json").read_text())["exports"]


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.glob(".*") if ".tmp-" in p.name or ".old-" in p.name)


def tflite_runner(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated" (still TensorFlow's runtime in 2.21)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter, interpreter.get_signature_runner("serving_default")


# -- the recipe's export list ---------------------------------------------------------------------------------------

BASE = "name: t\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n"


def test_export_entries_load_and_survive_the_stored_recipe():
    recipe = load_recipe_text(BASE + "export: [savedmodel, keras, tflite, {tflite: {quantize: int8}}, onnx]\n")
    assert [(e.format, e.quantize, e.label) for e in recipe.export] == [
        ("savedmodel", None, "savedmodel"), ("keras", None, "keras"), ("tflite", None, "tflite"),
        ("tflite", "int8", "tflite_int8"), ("onnx", None, "onnx")]
    stored = dump_recipe(recipe)
    assert stored.endswith("export:\n- savedmodel\n- keras\n- tflite\n- tflite: {quantize: int8}\n- onnx\n")
    assert load_recipe_text(stored).export == recipe.export


@pytest.mark.parametrize(("entry", "where", "message"), [
    ("[onnxx]", "r.yaml:3:10: export[0]", "unknown export format 'onnxx' (did you mean 'onnx'?)"),
    ("[{tflite: {quantize: int9}}]", "r.yaml:3:30: export[0].tflite.quantize", "got 'int9' (did you mean 'int8'?)"),
    ("[{tflite: {quantise: int8}}]", "r.yaml:3:20: export[0].tflite.quantise",
     "unknown key 'quantise' (did you mean 'quantize'?)"),
    ("[{tflite: int8}]", "r.yaml:3:19: export[0].tflite", "e.g. {tflite: {quantize: int8}}; got 'int8'"),
    ("[{onnx: {opset: 17}}]", "r.yaml:3:18: export[0].onnx.opset", "unknown key 'opset'"),
    ("[{tflite: {}, onnx: {}}]", "r.yaml:3:10: export[0]", "list each format as its own entry"),
    ("[keras, tflite, keras]", "r.yaml:3:25: export[2]", "the export keras is listed twice"),
])
def test_a_wrong_export_entry_is_located(entry, where, message):
    with pytest.raises(RecipeError) as caught:
        load_recipe_text(BASE + f"export: {entry}\n", "r.yaml")
    assert str(caught.value).startswith(f"{where}: ") and message in str(caught.value)


@pytest.mark.parametrize(("fmt", "quantize", "message"), [
    ("pb", None, "unknown export format 'pb'; choose one of savedmodel, keras, tflite, onnx"),
    ("tflit", None, "unknown export format 'tflit' (did you mean 'tflite'?)"),
    ("savedmodel", "int8", "only tflite exports are quantized, not savedmodel"),
    ("tflite", "int4", "quantize is one of dynamic, float16, int8, got 'int4'"),
])
def test_a_wrong_format_or_quantization_is_refused_before_anything_is_read(tmp_path, fmt, quantize, message):
    from cnnctl.run import Run

    with pytest.raises(UserError) as caught:
        export_run(fmt, Run(tmp_path), quantize=quantize)
    assert str(caught.value).startswith(message) and list(tmp_path.iterdir()) == []


# -- round trips through each runtime ------------------------------------------------------------------------------

@pytest.mark.slow
def test_recipe_exports_are_written_after_training_and_recorded(run, reference):
    records = exports(run)
    assert {"savedmodel", "keras"} <= set(records)
    assert (run / "export" / "savedmodel" / "saved_model.pb").is_file()
    assert (run / "export" / "serving.keras").is_file()
    _, labels, expected = reference
    keras_accuracy = float(np.mean(expected.argmax(axis=1) == labels))
    for record in records.values():
        assert record["input"] == "inputs" and record["outputs"] == ["output_0"]
        assert record["split"] == "test" and record["checked_examples"] == len(labels) == 360
        assert record["max_abs_diff"] <= most_diff("float32") and record["agreement"] == 1.0
        assert record["keras_accuracy"] == pytest.approx(keras_accuracy) == record["accuracy"]
    assert leftovers(run / "export") == []


@pytest.mark.slow
def test_savedmodel_takes_raw_pixels_and_matches_keras_alone_and_in_a_batch(run, reference):
    raw, _, expected = reference
    loaded = tf.saved_model.load(str(run / "export" / "savedmodel"))
    serve = loaded.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["inputs"]
    assert serve.structured_input_signature[1]["inputs"].shape.as_list() == [None, 8, 8, 1]
    batch = serve(inputs=tf.constant(raw))["output_0"].numpy()
    assert_close(batch, expected)
    for i in range(3):
        assert_close(serve(inputs=tf.constant(raw[i:i + 1]))["output_0"].numpy()[0], batch[i])


@pytest.mark.slow
def test_keras_export_reloads_in_safe_mode_and_is_recognised_as_a_serving_model(run, reference):
    from cnnctl.serving.model import load_model

    raw, _, expected = reference
    path = run / "export" / "serving.keras"
    model = keras.saving.load_model(path, safe_mode=True)
    assert model.name.endswith("_serving") and model.inputs[0].name == "inputs"
    assert_close(model(raw), expected)  # no training=False needed
    loaded = load_model(str(path))
    assert loaded.serving.name == model.name and loaded.class_names == [str(d) for d in range(10)]


def test_every_export_carries_its_class_names_and_a_copy_outside_the_run_uses_them(run, tmp_path):
    from cnnctl.serving.model import load_model

    names = [str(d) for d in range(10)]
    for label, record in exports(run).items():
        assert Path(record["labels"]).read_text().splitlines() == names, label
    assert (run / "export" / "savedmodel" / "labels.txt").is_file()
    shutil.copy(run / "export" / "serving.keras", tmp_path / "shipped.keras")
    shutil.copy(run / "export" / "serving.labels.txt", tmp_path / "shipped.labels.txt")
    assert load_model(str(tmp_path / "shipped.keras")).class_names == names


@pytest.mark.slow
def test_tflite_float_runs_in_the_interpreter_and_matches_keras(run, reference):
    raw, _, expected = reference
    record = export_run("tflite", run)
    assert record["path"] == str(run / "export" / "model.tflite") and record["quantize"] is None
    interpreter, runner = tflite_runner(record["path"])
    assert interpreter.get_signature_list()["serving_default"] == {"inputs": ["inputs"], "outputs": ["output_0"]}
    assert_close(runner(inputs=raw)["output_0"], expected)
    assert_close(runner(inputs=raw[:1])["output_0"], expected[:1])
    assert record["max_abs_diff"] <= most_diff("float32") and exports(run)["tflite"] == record


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["dynamic", "float16", "int8"])
def test_quantized_tflite_agrees_with_keras_within_its_tolerance(run, reference, quantize):
    raw, labels, expected = reference
    record = export_run("tflite", run, quantize=quantize)
    path = run / "export" / f"model_{quantize}.tflite"
    assert record["path"] == str(path) and record["quantize"] == quantize
    float_size = (run / "export" / "model.tflite").stat().st_size if (run / "export" / "model.tflite").exists() \
        else None
    interpreter, runner = tflite_runner(path)
    got = runner(inputs=raw)["output_0"]
    assert got.dtype == np.float32  # float in, float out, whatever is quantized inside
    agreement = float(np.mean(got.argmax(axis=1) == expected.argmax(axis=1)))
    tolerance = QUANTIZED[quantize]
    assert agreement >= tolerance.agreement and record["agreement"] == pytest.approx(agreement)
    assert record["accuracy"] == pytest.approx(float(np.mean(got.argmax(axis=1) == labels)))
    assert record["keras_accuracy"] - record["accuracy"] <= tolerance.accuracy_drop
    kinds = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert {"dynamic": np.int8, "float16": np.float16, "int8": np.int8}[quantize] in kinds, kinds
    if float_size:
        assert path.stat().st_size < float_size
    assert exports(run)[f"tflite_{quantize}"]["path"] == str(path)


NO_ONNX = "the onnx extra is not installed: pip install 'cnnctl[onnx]'"


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_and_matches_keras(run, reference):
    onnxruntime = pytest.importorskip("onnxruntime", reason=NO_ONNX)
    pytest.importorskip("tf2onnx", reason=NO_ONNX)
    raw, _, expected = reference
    record = export_run("onnx", run)
    session = onnxruntime.InferenceSession(record["path"], providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert (given.name, given.shape, given.type) == ("inputs", ["batch", 8, 8, 1], "tensor(float)")
    assert [o.name for o in session.get_outputs()] == ["output_0"]
    (got,) = session.run(None, {"inputs": raw})
    assert_close(got, expected)
    assert_close(session.run(None, {"inputs": raw[:1]})[0], expected[:1])
    assert record["opset"] >= 13 and record["runtime"].startswith("onnxruntime")


def test_onnx_without_the_extra_says_what_to_install(tmp_path, monkeypatch):
    # In-process, with the three packages unimportable (None in sys.modules: find_spec and import both fail), as on
    # a machine without the extra; it stops before reading the run, so a folder with a recipe is enough.
    from tests.conftest import cli

    for name in ("onnx", "onnxruntime", "tf2onnx"):
        monkeypatch.setitem(sys.modules, name, None)
    (tmp_path / "recipe.yaml").write_text(BASE)
    result = cli("export", "onnx", str(tmp_path))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "pip install 'cnnctl[onnx]'" in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "export").exists()
    # A recipe that asks for onnx after training is refused by check (and train) before anything runs.
    (tmp_path / "onnx.yaml").write_text(BASE.replace("layers: [Flatten]", "layers: [Flatten, {Dense: {units: 10}}]")
                                        + "export: [savedmodel, onnx]\n")
    result = cli("check", str(tmp_path / "onnx.yaml"))
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"{tmp_path / 'onnx.yaml'}:3:22: export[1]: " in result.stderr and "export[1]: " in result.stderr
    assert "pip install 'cnnctl[onnx]'" in result.stderr and "Traceback" not in result.output


# -- overwriting, atomicity --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_existing_export_is_kept_without_force_and_replaced_with_it(run):
    target = run / "export" / "savedmodel"
    before = (target / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(UserError, match="exists; use --force"):
        export_run("savedmodel", run)
    assert (target / "saved_model.pb").stat().st_mtime_ns == before
    record = export_run("savedmodel", run, force=True)
    assert record["path"] == str(target) and (target / "saved_model.pb").stat().st_mtime_ns != before
    assert leftovers(run / "export") == []


@pytest.mark.slow
def test_force_never_replaces_something_that_is_not_an_earlier_export(run, tmp_path):
    folder = tmp_path / "photos"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not a tflite file"):
        export_run("tflite", run, out=str(folder), force=True)
    with pytest.raises(UserError, match="not a SavedModel folder"):
        export_run("savedmodel", run, out=str(folder), force=True)
    assert (folder / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match=r"ending in \.keras"):
        export_run("keras", run, out=str(tmp_path / "model.h5"))


@pytest.mark.slow
def test_an_export_that_disagrees_with_keras_fails_and_leaves_nothing(tmp_path):
    # An untrained head with tiny weights: class scores differ by ~1e-5, below int8's output step (1/256), so
    # the int8 export ties every class (and picks the first) where Keras still picks the true argmax.
    flat = CNN.format(name="flat", epochs=1, lr="0.0", extra="").replace(
        "units: 10, activation: softmax", "units: 10, activation: softmax, kernel_initializer: "
        "{RandomNormal: {stddev: 1.0e-5, seed: 1}}")
    untrained = make_run(tmp_path, "flat", model=flat)
    with pytest.raises(CnnctlError) as caught:
        export_run("tflite", untrained, quantize="int8")
    assert not isinstance(caught.value, UserError) and caught.value.exit_code == 1
    assert "predicts the class Keras predicts on" in str(caught.value) and "nothing was written" in str(caught.value)
    assert not (untrained / "export" / "model_int8.tflite").exists()
    assert leftovers(untrained / "export") == []
    assert "exports" not in json.loads((untrained / "metrics.json").read_text())


# -- models that are not plain float32 chains -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["rescale", "standardize"])
def test_image_folder_export_crops_and_normalizes_inside_and_runs_in_inference_mode(tmp_path, normalize):
    # RandomCrop becomes a centre crop, pixels are rescaled or standardized with the training statistics (which
    # must be constants of the graph, not extra inputs, in ONNX too), and the Dropout after them must stay off in
    # every runtime (Keras's exporters call a model without training=False).
    images = write_image_dir(tmp_path / "images", count=300, classes=3, size=20, mode="RGB")
    recipe = CNN.format(name="folder", epochs=3, lr="3.0e-3", extra="export: [savedmodel, tflite, onnx]").replace(
        "data: {batch_size: 64}", f"data: {{source: image_dir, path: {images}, image_size: [20, 20], color_mode: rgb,"
        f" batch_size: 32, normalize: {normalize}, augment: [{{RandomCrop: {{height: 16, width: 16}}}}]}}").replace(
        "input: [8, 8, 1]", "input: [16, 16, 3]").replace("units: 10", "units: 3")
    run = make_run(tmp_path / "runs", "folder", model=recipe)
    data = datasets_of(load_recipe(str(run / "recipe.yaml")), read_record(run).normalization)
    raw, _ = data.sample("test", 100, raw=True)
    preprocessed, _ = data.sample("test", 100)
    assert raw.shape[1:] == (20, 20, 3) and raw.max() > 1 and preprocessed.shape[1:] == (16, 16, 3)
    expected = np.asarray(keras.saving.load_model(run / "model.keras")(preprocessed, training=False))
    serve = tf.saved_model.load(str(run / "export" / "savedmodel")).signatures["serving_default"]
    assert_close(serve(inputs=tf.constant(raw, tf.float32))["output_0"].numpy(), expected)
    _, runner = tflite_runner(run / "export" / "model.tflite")
    assert_close(runner(inputs=raw.astype("float32"))["output_0"], expected)
    assert exports(run)["tflite"]["input_shape"] == [None, 20, 20, 3]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["inputs"]
    assert_close(session.run(["output_0"], {"inputs": raw.astype("float32")})[0], expected)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """A float16 model (mixed_float16) whose recipe exports savedmodel and tflite after training."""
    return make_run(tmp_path_factory.mktemp("mixed"), "mixed", epochs=2,
                    extra="  mixed_precision: float16\nexport: [savedmodel, tflite]")


@pytest.mark.slow
def test_mixed_precision_models_export_to_savedmodel_and_tflite(mixed_run):
    records = exports(mixed_run)
    # The SavedModel computes the float16 graph itself, which oneDNN may round otherwise than Keras does (CPUs with
    # AVX512-FP16 take other float16 paths); TFLite computes its float32 twin. Both are within float16's tolerance.
    assert "computed_in" not in records["savedmodel"]
    assert records["savedmodel"]["max_abs_diff"] <= most_diff("float16")
    assert records["tflite"]["computed_in"] == "float32 (the mixed_float16 model's float32 twin)"
    assert 0 < records["tflite"]["max_abs_diff"] <= most_diff("float16") and records["tflite"]["agreement"] >= 0.99


def shifted(base: str, offset: float, name: str) -> Format:
    """The real format ``base``, written and reloaded by its own runtime, whose outputs come back ``offset``
    higher: an export that disagrees with the Keras model by that much, everywhere."""
    form = FORMATS.get(base)

    def load(path, *, unsafe: bool = False):
        artifact = form.load(path, unsafe=unsafe)
        return dataclasses.replace(artifact, predict=lambda x: [o + offset for o in artifact.predict(x)])

    return dataclasses.replace(form, name=name, file_name=name, load=load)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_the_check_refuses_an_export_beyond_the_tolerance_of_the_dtype_the_model_computes_in(
        dtype, run, mixed_run, tmp_path):
    # The comparison itself, not the tolerance it records: a SavedModel shifted by half its dtype's atol passes,
    # shifted by twice the most its tolerance allows it is refused. A float16 model's export passes shifted by
    # 2.5e-3, twenty times what float32's tolerance allows: the check used float16's.
    source = {"float32": run, "float16": mixed_run}[dtype]
    copy = Run(shutil.copytree(source, tmp_path / "run"))
    atol = TOLERANCE[dtype]["atol"]
    within = shifted("savedmodel", 0.5 * atol, "savedmodel_within")
    beyond = shifted("savedmodel", 2 * most_diff(dtype), "savedmodel_beyond")
    FORMATS.register(within)
    try:
        record = export_run(within.name, copy)
    finally:
        FORMATS.unregister(within.name)
    assert record["tolerance"] == TOLERANCE[dtype]
    assert 0.45 * atol <= record["max_abs_diff"] <= most_diff(dtype)  # the shift, as the export's float32 holds it
    if dtype == "float16":
        assert 0.5 * atol > most_diff("float32")
    FORMATS.register(beyond)
    try:
        result = cli("export", beyond.name, str(copy))
    finally:
        FORMATS.unregister(beyond.name)
    assert result.exit_code == 1, (result.output, result.exception)
    assert "disagrees with the Keras model" in result.stderr and "nothing was written" in result.stderr
    assert not (copy / "export" / beyond.file_name).exists() and leftovers(copy / "export") == []
    assert beyond.name not in exports(copy)


EARLY_EXIT = """
name: early
data: {batch_size: 64}
model:
  input: [8, 8, 1]
  graph:
    conv: {Conv2D: {filters: 8, kernel_size: 3, padding: same, activation: relu}}
    flat: Flatten
    early: {Dense: {units: 10, activation: softmax}, from: flat}
    hidden: {Dense: {units: 32, activation: relu}, from: flat}
    final: {Dense: {units: 10, activation: softmax}}
  outputs: [early, final]
train: {epochs: 3, metrics: [accuracy], monitor: null}
log: {tensorboard: false}
export: [tflite]
"""


@pytest.mark.slow
def test_a_two_output_model_exports_both_outputs_and_checks_each(tmp_path):
    run = make_run(tmp_path, "early", model=EARLY_EXIT)
    record = exports(run)["tflite"]
    assert record["outputs"] == ["output_0", "output_1"] and record["model_outputs"] == ["early", "final"]
    assert [o["output"] for o in record["per_output"]] == ["output_0", "output_1"]
    assert record["accuracy"] == record["per_output"][1]["accuracy"]  # the headline figure is the last output's
    data = datasets_of(load_recipe(str(run / "recipe.yaml")), read_record(run).normalization)
    raw, _ = data.sample("test", 50, raw=True)
    preprocessed, _ = data.sample("test", 50)
    early, final = (np.asarray(o) for o in keras.saving.load_model(run / "model.keras")(preprocessed))
    _, runner = tflite_runner(run / "export" / "model.tflite")
    got = runner(inputs=raw.astype("float32"))
    assert_close(got["output_0"], early)
    assert_close(got["output_1"], final)
