"""Loading .keras files cnnctl did not make: what could run code is refused before Keras reads a byte of it.

Every model here is a real file on disk: saved by Keras (a Lambda layer whose code
would leave a marker file behind, a legacy HDF5 file), or a real archive whose
config.json was rewritten as an attacker would (a class from ``os``, a TFSMLayer,
a function from ``builtins``). The marker proves the refusal came before the code
could run: the lambda runs as soon as Keras rebuilds the model (it has no
``output_shape``, so Keras calls it to infer one), as the ``unsafe`` case shows.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import pytest

from cnnctl.errors import UserError
from cnnctl.model.saved import load_keras_model, read_config, untrusted_objects


def touching(path: str):
    """A lambda that creates ``path`` whenever it runs (a closure: marshalled with the bytecode)."""
    return lambda x: (__import__("pathlib").Path(path).touch(), x * 2)[1]


def lambda_model(folder: Path) -> tuple[Path, Path]:
    """(a .keras file holding Lambda layer 'doubler', the marker file its code creates); the marker absent."""
    marker = folder / "lambda-ran"
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(touching(str(marker)), name="doubler")(inputs))
    path = folder / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    marker.unlink(missing_ok=True)  # building the model ran it once
    return path, marker


def plain_model(path: Path) -> Path:
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Dense(3, name="hidden")(inputs))).save(path)
    return path


def rewritten(source: Path, target: Path, change) -> Path:
    """``source``'s archive with config.json passed through ``change`` (which edits the dict in place)."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def layer(config: dict, name: str) -> dict:
    return next(entry for entry in config["config"]["layers"] if entry["config"]["name"] == name)


def refusal(path: Path, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        load_keras_model(path, **kwargs)
    return str(info.value)


def test_a_lambda_layer_is_refused_by_name_and_its_code_does_not_run(tmp_path):
    path, marker = lambda_model(tmp_path)
    message = refusal(path)
    assert "Lambda layer 'doubler' (keras.layers.Lambda)" in message  # what was found
    assert "could run code" in message  # why
    assert "--unsafe" in message and "trust" in message  # what to do
    assert "Requested the deserialization" not in message  # cnnctl's refusal, made before Keras's own
    assert not marker.exists()


def test_unsafe_loads_the_lambda_after_a_warning_and_its_code_runs(tmp_path, capsys):
    path, marker = lambda_model(tmp_path)
    model = load_keras_model(path, unsafe=True)
    assert marker.exists()  # the lambda is real code: without the refusal it would have run
    assert "warning: --unsafe" in capsys.readouterr().err
    assert model.get_layer("doubler") is not None


def test_a_lambda_is_found_inside_a_wrapper_layer():
    inputs = keras.Input((3, 4))
    wrapped = keras.layers.TimeDistributed(keras.layers.Lambda(lambda x: x + 1, name="inner"), name="outer")
    model = keras.Model(inputs, wrapped(inputs))
    (found,) = untrusted_objects(keras.saving.serialize_keras_object(model))
    assert found.layer == "inner" and "Lambda" in found.what


@pytest.mark.parametrize("change, named", [
    (lambda c: layer(c, "hidden").update(module="os", class_name="system", registered_name=None),
     "class 'system' from module 'os'"),
    (lambda c: layer(c, "hidden").update(module="builtins", class_name="eval", registered_name=None),
     "class 'eval' from module 'builtins'"),
    (lambda c: layer(c, "hidden").update(module=None, class_name="Gadget", registered_name="evil>Gadget"),
     "class 'Gadget' with no module"),
    (lambda c: layer(c, "hidden").update(module="keras.layers", class_name="NoSuchLayer", registered_name=None),
     "class keras.layers.NoSuchLayer"),
    (lambda c: layer(c, "hidden").update(module="keras.layers", class_name="TFSMLayer", registered_name=None),
     "TFSMLayer layer 'hidden'"),
    (lambda c: layer(c, "hidden")["config"].update(
        activation={"module": "os", "class_name": "function", "config": "system", "registered_name": "system"}),
     "function os.system (in layer 'hidden')"),
    (lambda c: layer(c, "hidden")["config"].update(
        activation={"module": "builtins", "class_name": "function", "config": "exec", "registered_name": "exec"}),
     "function builtins.exec (in layer 'hidden')"),
    (lambda c: layer(c, "hidden")["config"].update(
        activation={"module": "keras.utils", "class_name": "function", "config": "get_file",
                    "registered_name": None}),
     "function keras.utils.get_file"),  # CVE-2025-8747's gadget: a Keras function, but not a modeling one
])
def test_objects_that_are_not_keras_or_cnnctl_are_refused_by_name(tmp_path, change, named):
    path = rewritten(plain_model(tmp_path / "plain.keras"), tmp_path / "bad.keras", change)
    message = refusal(path)
    assert named in message and "--unsafe" in message, message


def test_models_of_keras_and_cnnctl_layers_pass_the_vetting():
    from cnnctl.model import build
    from cnnctl.recipe import load_recipe
    from tests.conftest import ROOT

    for name in ("early_exit", "digits_graph", "se_resnet", "digits_bilstm", "alexnet"):
        model = build(load_recipe(str(ROOT / "recipes" / f"{name}.yaml"))).model
        assert untrusted_objects(keras.saving.serialize_keras_object(model)) == [], name
    foreign = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))  # not made by cnnctl
    assert untrusted_objects(keras.saving.serialize_keras_object(foreign)) == []


def test_a_saved_model_with_cnnctls_layers_reloads(tmp_path):
    from cnnctl.model.custom_layers import SqueezeExcite

    inputs = keras.Input((8, 8, 4))
    path = tmp_path / "se.keras"
    keras.Model(inputs, SqueezeExcite(reduction=2)(inputs)).save(path)
    assert load_keras_model(path).layers[-1].__class__ is SqueezeExcite


def test_the_optimizer_config_is_not_vetted_since_it_is_never_loaded(tmp_path):
    path = plain_model(tmp_path / "plain.keras")
    config = read_config(path)
    config["compile_config"] = {"optimizer": {"module": "os", "class_name": "system", "config": {}}}
    assert untrusted_objects(config) == []  # cnnctl loads models uncompiled: Keras never reads it


@pytest.mark.parametrize("content, phrase", [
    (b"", "is empty"),
    (b"just some notes\n", "is text, not a Keras model"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "is a PNG image, not a model"),
])
def test_files_that_are_not_archives_are_named_for_what_they_are(tmp_path, content, phrase):
    path = tmp_path / "model.keras"
    path.write_bytes(content)
    assert phrase in refusal(path)


def test_a_truncated_archive_is_told_as_truncated(tmp_path):
    whole = plain_model(tmp_path / "whole.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    assert "is a truncated .keras archive" in refusal(cut)


def test_an_archive_without_a_config_or_with_a_broken_one(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "without config.json" in refusal(tmp_path / "other.keras")
    with zipfile.ZipFile(tmp_path / "broken.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
    assert "its config.json is not JSON" in refusal(tmp_path / "broken.keras")


def test_a_legacy_hdf5_model_is_refused_even_with_unsafe(tmp_path):
    path, marker = lambda_model(tmp_path)
    h5 = tmp_path / "legacy.h5"
    keras.saving.load_model(path, safe_mode=False).save(h5)  # a real HDF5 file, as Keras writes one
    marker.unlink(missing_ok=True)
    for unsafe in (False, True):
        message = refusal(h5, unsafe=unsafe)
        assert "legacy HDF5" in message and "CVE-2025-9905" in message and "keras.saving.load_model" in message
    renamed = tmp_path / "legacy.keras"  # the content decides, not the name
    renamed.write_bytes(h5.read_bytes())
    assert "legacy HDF5" in refusal(renamed)
    assert not marker.exists()


def test_cnnctl_layers_names_every_layer_cnnctl_registers():
    import cnnctl.layers
    from cnnctl.model.saved import cnnctl_layers

    assert cnnctl_layers() == sorted(cnnctl.layers.__all__)
    assert all(keras.saving.get_registered_object(f"cnnctl>{n}") is getattr(cnnctl.layers, n)
               for n in cnnctl.layers.__all__)
