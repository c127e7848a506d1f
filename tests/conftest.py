"""Shared helpers: the repository's recipes, and running the real `cnnctl` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "recipes" / "digits_cnn.yaml"
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))

_BUILT: dict = {}


def built_recipe(name: str):
    """``recipes/NAME.yaml`` built (a ``cnnctl.model.Built``), once per session for every test that reads it.

    Building VGG-16 or Inception-v3 takes seconds, so the zoo's tests share one build: those that read its
    structure first (test_classic_recipes.py, test_recipes.py), then test_recipes_train.py, which trains it
    one step and releases it (pytest runs the files in that order; alone, each builds what it needs).
    """
    if name not in _BUILT:
        from cnnctl.model import build
        from cnnctl.recipe import load_recipe

        _BUILT[name] = build(load_recipe(str(ROOT / "recipes" / f"{name}.yaml")))
    return _BUILT[name]


def release_built_recipe(name: str) -> None:
    _BUILT.pop(name, None)


def datasets_of(recipe, normalization=None):
    """``recipe``'s data as training builds it: the data stage takes the data section and the seed.
    ``normalization``: a run's stored record (data.json's ``normalization``, a dict or a ``Normalization``)."""
    from cnnctl.data.pipeline import build_datasets
    from cnnctl.data.record import Normalization

    if isinstance(normalization, dict):
        normalization = Normalization.from_json(normalization)
    return build_datasets(recipe.data, recipe.seed, normalization)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``cnnctl ARGS`` in a fresh process, as a user would; capture stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "cnnctl", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )


def train_text(text: str, runs_dir: Path) -> Path:
    """Train the recipe in ``text`` (in-process, quietly) into ``runs_dir``; the run directory."""
    from cnnctl.recipe import load_recipe_text
    from cnnctl.training.trainer import train

    return train(load_recipe_text(text, "recipe.yaml"), str(runs_dir), progress=False).run.path


def invoke(*args: str):
    """Run ``cnnctl ARGS`` in-process (CliRunner); assert exit 0; the parsed JSON with --json, else stdout."""
    import json

    from click.testing import CliRunner

    from cnnctl.cli import main

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout) if "--json" in args else result.stdout


def cli(*args: str):
    """Run ``cnnctl ARGS`` in-process (CliRunner); assert nothing; click's Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from cnnctl.cli import main

    return CliRunner().invoke(main, list(args))


def invoke_fails(*args: str) -> str:
    """Run ``cnnctl ARGS`` in-process; assert exit 2, one ``error:`` line (maybe followed by a list), no
    traceback; return stderr."""
    from click.testing import CliRunner

    from cnnctl.cli import main

    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert sum(line.startswith("error: ") for line in result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


@pytest.fixture
def write_recipe(tmp_path: Path):
    """Write YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
