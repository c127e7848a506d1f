"""Small things a new user meets in the commands: run names, built-in recipe names, --json, hints, help, columns.

In-process (CliRunner); the tests that need a trained model share the session's digits run.
"""

from __future__ import annotations

import json
import re

import click
import numpy as np
import pytest

import cnnctl
from cnnctl.errors import UserError
from tests.conftest import DIGITS, ROOT, cli, invoke, invoke_fails


def test_a_bad_run_name_is_blamed_on_the_name_option(tmp_path):
    result = cli("train", str(DIGITS), "--name", "my run", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "--name" in result.stderr and "--set" not in result.stderr and "'my_run'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_api_says_name_for_a_bad_run_name(tmp_path):
    with pytest.raises(UserError, match=r"^name: a run name is letters") as caught:
        cnnctl.train(DIGITS, name="my run", runs_dir=tmp_path / "runs")
    assert "--set" not in str(caught.value)


def test_recipes_name_json_is_json():
    entry = invoke("recipes", "lenet5", "--json")
    assert entry["name"] == "lenet5" and entry["text"] == (ROOT / "recipes" / "lenet5.yaml").read_text()
    assert entry["summary"] and entry["data"] and entry["path"].endswith("lenet5.yaml")


def test_a_built_in_recipe_name_stands_for_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here
    assert invoke("check", "digits_mlp", "--json")["params"] == 650
    assert invoke("check", "digits_mlp.yaml", "--json")["params"] == 650
    assert cnnctl.load_recipe("digits_mlp").name == "digits_mlp"


def test_a_file_of_that_name_wins_over_the_built_in_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits_mlp").write_text((ROOT / "recipes" / "digits_mlp.yaml").read_text().replace(
        "units: 10, activation: softmax", "units: 10, activation: softmax, use_bias: false"))
    assert invoke("check", "digits_mlp", "--json")["params"] == 640


def test_a_mistyped_built_in_recipe_name_is_suggested(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = invoke_fails("check", "digits_mpl")
    assert "digits_mpl: no such file, nor a built-in recipe (did you mean 'digits_mlp'?)" in error


def test_eval_data_takes_a_built_in_recipe_name(digits_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = digits_run.copy(tmp_path)
    result = invoke("eval", str(run), "--data", "digits_cnn", "--json")
    assert result["metrics"]["accuracy"] == pytest.approx(digits_run.metrics["test"]["accuracy"], abs=1e-6)


def test_no_runs_hint_names_the_runs_dir_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for runs in (tmp_path / "runs", tmp_path / "elsewhere"):
        runs.mkdir(exist_ok=runs.name == "runs")
        error = invoke_fails("eval", "latest", "--runs-dir", str(runs))
        assert "no runs under" in error and "--runs-dir" in error
    assert "does not exist" in invoke_fails("eval", "latest", "--runs-dir", str(tmp_path / "nowhere"))


def test_every_option_of_every_command_has_help_text():
    from cnnctl.cli import main

    missing = [f"{name} {param.opts[0]}" for name, command in main.commands.items() for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []


def test_predict_prints_a_table_whose_columns_line_up(digits_run, tmp_path):
    pixels = np.random.default_rng(0).random((3, 8, 8, 1), dtype="float32")
    np.save(tmp_path / "a.npy", pixels[0])
    np.save(tmp_path / "a_much_longer_name.npy", pixels[1:])
    lines = invoke("predict", str(digits_run.path), str(tmp_path / "a.npy"), str(tmp_path / "a_much_longer_name.npy"),
                   "--top-k", "3").splitlines()
    assert len(lines) == 4 and lines[0].split() == ["input", "top", "1", "p", "top", "2", "p", "top", "3", "p"]
    ends = [[m.end() for m in re.finditer(r"\b[01]\.\d{3}\b", line)] for line in lines[1:]]
    assert len(ends[0]) == 3 and ends[0] == ends[1] == ends[2]  # each probability column ends at one place
    assert [m.end() for m in re.finditer(r"\bp\b", lines[0])] == ends[0]  # under its header
    starts = [[m.start() for m in re.finditer(r"(?<=  )\S+(?=  +[01]\.\d{3})", line)] for line in lines[1:]]
    assert starts[0] == starts[1] == starts[2]  # and so does each class column


def test_predict_json_is_unchanged_by_the_table(digits_run, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8, 1), "float32"))
    predictions = invoke("predict", str(digits_run.path), str(tmp_path / "a.npy"), "--json")["predictions"]
    assert [p["input"] for p in predictions] == [str(tmp_path / "a.npy")]
    json.dumps(predictions)
