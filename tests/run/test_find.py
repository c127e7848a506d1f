"""The one run finder: every command that takes a run gives the same answer for the same wrong path.

``train --resume`` and ``export`` take only a run; ``eval`` and ``predict`` take a ``.keras`` file too, so
for a file they say what it is as a model. Each case is told before TensorFlow loads, with exit 2.
"""

from __future__ import annotations

import shutil

import pytest

from cnnctl.errors import UserError
from cnnctl.run import Run, find_run, is_run, latest_run, layout, run_of
from tests.conftest import invoke_fails
from tests.datafiles import write_image_dir


@pytest.fixture
def places(digits_run, tmp_path):
    """Wrong things to give as a run, each with the words its message must have."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(digits_run.path / "recipe.yaml", project / "recipe.yaml")  # a recipe beside nothing trained
    write_image_dir(tmp_path / "photos", count=6, classes=2, size=8)
    (tmp_path / "empty").mkdir()
    return {
        "missing": (tmp_path / "nope", "no such run directory"),
        "recipe": (project / "recipe.yaml", "is a recipe, not a run directory"),
        "file in a run": (digits_run.path / "history.csv", f"is a file of the run {digits_run.path}"),
        "images": (tmp_path / "photos", "is a folder of images, not a run directory"),
        "empty": (tmp_path / "empty", "is not a run directory (it has no recipe.yaml)"),
        "runs folder": (digits_run.workdir / "runs", "runs inside it include"),
        "project": (project, "holds a recipe.yaml but none of the files training writes"),
    }


def test_resume_and_export_give_the_same_message_for_the_same_wrong_run(places):
    for name, (path, words) in places.items():
        resumed = invoke_fails("train", "--resume", str(path))
        exported = invoke_fails("export", "savedmodel", str(path))
        assert words in resumed, (name, resumed)
        assert resumed == exported, name


def test_the_finder_takes_a_path_a_string_a_run_or_latest(digits_run):
    run = digits_run.path
    assert find_run(run) == find_run(str(run)) == find_run(Run(run)) == Run(run)
    assert latest_run(digits_run.workdir / "runs") == Run(run)
    assert find_run("latest", digits_run.workdir / "runs") == Run(run)
    assert is_run(run) and run_of(run / layout.MODEL) == Run(run)
    assert run_of(digits_run.workdir / "runs") is None
    with pytest.raises(UserError, match="no runs under"):
        latest_run(digits_run.workdir / "nothing")
