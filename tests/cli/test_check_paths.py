"""`cnnctl check` and the files a recipe or a flag names: a folder to draw the graph in, the data's path.

Each mistake is told as one `error:` line, exit 2, before any model is built (CliRunner, in-process).
"""

from __future__ import annotations

import pytest

import cnnctl
from cnnctl.errors import RecipeError, UserError
from tests.conftest import ROOT, cli, invoke_fails

MLP = str(ROOT / "recipes" / "digits_mlp.yaml")

PHOTOS = """\
name: photos
data:
  source: image_dir
  path: {path}
  image_size: [8, 8]
model: {{input: [8, 8, 3], layers: [Flatten, {{Dense: {{units: 3, activation: softmax}}}}]}}
"""


def _usage_error(result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result.stderr


def test_a_graph_in_a_folder_that_does_not_exist_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = _usage_error(cli("check", MLP, "--graph", "nodir/x.png"))
    assert "--graph" in error and "nodir/x.png: no folder nodir" in error and "make it first" in error
    assert not (tmp_path / "nodir").exists()


def test_a_graph_under_a_file_is_refused(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    error = _usage_error(cli("check", MLP, "--graph", str(plain / "x.svg")))
    assert f"{plain} is not a folder" in error


def test_the_api_refuses_the_graph_folder_before_reading_the_recipe(tmp_path):
    with pytest.raises(UserError, match="no folder"):  # the recipe is not even read: it does not exist
        cnnctl.check(tmp_path / "missing.yaml", graph=tmp_path / "nodir" / "x.svg")


def test_a_graph_in_an_existing_folder_is_drawn(tmp_path):
    result = cli("check", MLP, "--graph", str(tmp_path / "x.svg"))
    assert result.exit_code == 0, (result.output, result.exception)
    assert (tmp_path / "x.svg").read_text().startswith("<svg")


@pytest.mark.parametrize(("path", "key"), [("photso", "data.path"),
                                           ("{train: photos, test: photso}", "data.path.test")])
def test_check_without_data_reports_a_missing_data_path_at_its_key(tmp_path, path, key):
    (tmp_path / "photos").mkdir()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(PHOTOS.format(path=path))
    error = invoke_fails("check", str(recipe))
    assert f"error: {recipe}:4:" in error and f"{key}: " in error and "does not exist" in error
    assert "did you mean" in error


def test_check_without_data_reports_a_pattern_that_matches_nothing(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: t\ndata: {source: tfrecord, path: 'shards/*.tfrecord', features: {image: {dtype: string},"
                      " label: {dtype: int64}}, image_size: [8, 8]}\n"
                      "model: {input: [8, 8, 3], layers: [Flatten, {Dense: {units: 3, activation: softmax}}]}\n")
    error = invoke_fails("check", str(recipe))
    assert "data.path: no file matches" in error


def test_the_api_check_raises_a_located_recipe_error(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(PHOTOS.format(path="nowhere"))
    with pytest.raises(RecipeError) as caught:
        cnnctl.check(recipe)
    assert [p.path for p in caught.value.problems] == ["data.path"]


def wide_graph_recipe(branches: int = 100) -> str:
    """A graph of ``branches`` side by side, each box wide with its long name: too wide for a legible PNG."""
    names = [f"a_branch_with_a_long_name_that_makes_its_box_wide_{i:03d}" for i in range(branches)]
    nodes = [f"    {n}: {{Dense: {{units: 1}}, from: image}}" for n in names]
    return "\n".join(["name: wide", "model:", "  input: [4]", "  graph:", *nodes,
                      f"    merged: {{Concatenate: {{}}, from: [{', '.join(names)}]}}",
                      "    out: {Dense: {units: 10, activation: softmax}, from: merged}", "  outputs: [out]", ""])


def test_a_png_too_large_to_read_is_drawn_with_a_warning_recommending_svg(tmp_path):
    recipe = tmp_path / "wide.yaml"
    recipe.write_text(wide_graph_recipe())
    result = cli("check", str(recipe), "--graph", str(tmp_path / "wide.png"))
    assert result.exit_code == 0, (result.output, result.exception)
    (warning,) = [line for line in result.stderr.splitlines() if "legible" in line]
    assert warning.startswith(f"warning: {tmp_path / 'wide.png'}: this graph (103 nodes)") and ".svg" in warning
    assert (tmp_path / "wide.png").stat().st_size > 0
    result = cli("check", str(recipe), "--graph", str(tmp_path / "wide.svg"))
    assert result.exit_code == 0 and "legible" not in result.stderr
