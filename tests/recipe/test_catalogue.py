"""`cnnctl recipes`: the built-in catalogue, listed and printed without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import invoke, invoke_fails

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


def test_the_list_names_every_recipe_with_a_summary():
    listed = invoke("recipes", "--json")
    assert [r["name"] for r in listed] == [p.stem for p in RECIPES]
    assert all(r["summary"] for r in listed)
    table = invoke("recipes")
    assert all(p.stem in table for p in RECIPES)


def test_a_recipe_prints_as_its_file_and_starts_a_project(tmp_path):
    for path in RECIPES:
        text = invoke("recipes", path.stem)
        assert text == path.read_text()
        assert yaml.safe_load(text)["name"] == path.stem  # a recipe names itself after its file
    (tmp_path / "mine.yaml").write_text(invoke("recipes", "lenet5"))
    report = invoke("check", str(tmp_path / "mine.yaml"), "--json")
    assert report["params"] == 61_706


def test_an_unknown_recipe_suggests_the_closest():
    assert "no built-in recipe 'lenet' (did you mean 'lenet5'?)" in invoke_fails("recipes", "lenet")


def test_listing_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, atexit\natexit.register(lambda: print('tensorflow imported' if 'tensorflow' in "
            "sys.modules else 'no tensorflow', file=sys.stderr))\nfrom cnnctl.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code, "recipes"], capture_output=True, text=True)
    assert result.returncode == 0 and "no tensorflow" in result.stderr


def test_every_recipe_says_what_data_it_expects_and_what_it_reached():
    listed = invoke("recipes", "--json")
    for entry in listed:
        assert entry["data"] and len(entry["data"]) <= 110, (entry["name"], entry["data"])
        assert entry["measured"] and len(entry["measured"]) <= 110, (entry["name"], entry["measured"])


def test_the_docs_table_has_a_row_per_recipe_saying_what_its_header_says():
    from cnnctl.recipe.catalogue import documented_rows

    rows = documented_rows()
    listed = invoke("recipes", "--json")
    assert sorted(rows) == [r["name"] for r in listed], "run python -m cnnctl.model.zoo --write docs/recipes.md"
    for entry in listed:
        row = rows[entry["name"]]
        assert (row["Network"], row["Data"], row["Measured"]) == (entry["summary"], entry["data"], entry["measured"])
