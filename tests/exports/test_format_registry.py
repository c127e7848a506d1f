"""An export format is one declaration: registered from this test module, ``cnnctl export`` and a recipe's
``export:`` list take it, and the writer checks it against Keras like the built-in ones.

The ``keras_copy`` format below is all a new format takes (in cnnctl it would be one file of
``cnnctl/exports/formats/``): a writer, a loader that runs the artifact with its own runtime, a
test of what a path holds, and the ``Format`` row naming them. ``broken_copy`` reloads with its
outputs off by 0.01, which the writer's check against Keras must refuse.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

import cnnctl
from cnnctl.errors import CnnctlError
from cnnctl.exports.format import Artifact, Format
from cnnctl.recipe import load_recipe_text
from cnnctl.registry import FORMATS
from tests.tolerance import most_diff


def write_copy(serving, path: Path, options, data) -> dict:
    """The serving model as a .keras archive: what this format ships."""
    serving.save(path)
    return {"archive_members": len(zipfile.ZipFile(path).namelist())}


def load_copy(path: Path, *, unsafe: bool = False) -> Artifact:
    from cnnctl.model.saved import load_keras_model

    model = load_keras_model(path, unsafe=unsafe, warn=False)
    return Artifact("inputs", ["output_0"], lambda x: [np.asarray(model(x, training=False))], "keras (a copy)")


def load_broken(path: Path, *, unsafe: bool = False) -> Artifact:
    """As load_copy, but the outputs are off by 0.01: the check must catch it."""
    artifact = load_copy(path, unsafe=unsafe)
    return Artifact(artifact.input, artifact.outputs, lambda x: [artifact.predict(x)[0] + 0.01], artifact.runtime)


def is_copy(path: Path) -> bool:
    return zipfile.is_zipfile(path)


@pytest.fixture
def registered():
    FORMATS.register(Format(name="keras_copy", file_name="copy.keras", suffix=".keras", write=write_copy,
                            load=load_copy, recognizes=is_copy))
    FORMATS.register(Format(name="broken_copy", file_name="broken.keras", suffix=".keras", write=write_copy,
                            load=load_broken, recognizes=is_copy))
    yield
    FORMATS.unregister("keras_copy")
    FORMATS.unregister("broken_copy")


def test_a_registered_format_exports_a_run_and_is_checked(registered, digits_run, tmp_path):
    run = digits_run.copy(tmp_path)
    result = cnnctl.export("keras_copy", run)
    assert result.path == (run / "export" / "copy.keras").resolve() and result.path.is_file()
    assert result.record["runtime"] == "keras (a copy)" and result.record["archive_members"] >= 3
    assert result.max_abs_diff <= most_diff("float32") and result.record["checked_examples"] == 360
    assert (run / "export" / "copy.labels.txt").read_text().split() == [str(d) for d in range(10)]
    assert cnnctl.Run(run).metrics()["exports"]["keras_copy"]["path"] == str(result.path)
    with pytest.raises(CnnctlError, match="disagrees with the Keras model"):  # the writer checks, not the format
        cnnctl.export("broken_copy", run)
    assert not (run / "export" / "broken.keras").exists()


def test_a_recipe_lists_a_registered_format_and_check_refuses_an_unknown_one(registered):
    base = "name: t\nmodel: {input: [8, 8, 1], layers: [Flatten]}\n"
    assert [e.label for e in load_recipe_text(base + "export: [keras_copy, savedmodel]\n").export] == [
        "keras_copy", "savedmodel"]
    with pytest.raises(cnnctl.RecipeError, match="unknown export format 'keras_cpy' \\(did you mean 'keras_copy'"):
        load_recipe_text(base + "export: [keras_cpy]\n")
