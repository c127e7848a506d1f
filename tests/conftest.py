"""Shared helpers: the repository's recipes, running the real `cnnctl` command, and the session's digits run.

The suite runs on two workers (pytest-xdist, ``-n 2`` in pyproject.toml). Each test file goes to one worker
as a whole, so a module's fixtures are made once; the tests of the shared digits run (``digits_run``) all
go to the worker that trains it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # one core per worker: TensorFlow's threads would only contend for it
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")  # (read when TensorFlow starts, in this process and
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")  # in the `cnnctl` processes the tests start)

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


@dataclass(frozen=True)
class DigitsRun:
    """recipes/digits_cnn.yaml trained by the README's first command, ``cnnctl train recipes/digits_cnn.yaml``,
    in a process of its own, in ``workdir`` (the run is ``workdir/runs/digits_cnn/STAMP``)."""

    workdir: Path
    path: Path
    result: subprocess.CompletedProcess

    @property
    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def copy(self, folder: Path, *, without: tuple[str, ...] = ()) -> Path:
        """A copy of the run (as ``folder/runs/digits_cnn/STAMP``) for a test that changes it; ``without``: the
        names of the run's files and folders left out. ``latest`` under ``folder/runs`` names the copy."""
        target = folder / "runs" / "digits_cnn" / self.path.name
        shutil.copytree(self.path, target, ignore=lambda _, names: [n for n in names if n in without])
        return target


# The groups that take longest, longest first (measured one after another on 2 cores: 45 s down to 10 s each): the
# workers start on them and the short files fill in at the end. Only the order depends on this list; a file
# missing from it runs after these.
LONGEST_FIRST = [
    "tests/training/test_crash_resume.py", "digits_run", "tests/data/test_sources.py", "tests/exports/test_writer.py",
    "tests/model/test_zoo_rnn.py", "tests/model/test_zoo_digits_best.py", "zoo", "tests/training/test_resume.py",
    "tests/tensorboard/test_server.py", "tests/training/test_trainer.py", "tests/exports/test_export_cli.py",
    "tests/model/test_zoo_gnn_se.py", "tests/serving/test_eval_predict.py", "tests/recipe/test_fuzz_check.py",
    "tests/data/test_keras_datasets.py", "tests/cli/test_bad_input.py", "tests/serving/test_outputs.py",
    "tests/tensorboard/test_callbacks.py", "tests/serving/test_early_exit.py", "tests/test_api.py",
    "tests/recipe/test_recipe_boundary.py", "tests/data/test_data_cli.py",
]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Keep each test file on one worker (its module fixtures train once), every test of the shared digits run on
    the worker that trains it, and the zoo's files together (they share its built models): ``--dist loadgroup``
    runs a group on one worker. Then the longest groups first."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            shared = "digits_run" in getattr(item, "fixturenames", ())
            item.add_marker(pytest.mark.xdist_group("digits_run" if shared else item.nodeid.split("::")[0]))
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.get_closest_marker("xdist_group").args[0], len(rank)))


def pytest_collection_finish(session):
    """xdist groups by a suffix it writes into each node id; if none is there, the groups above are ignored (the
    suite still passes, but trains the shared run twice): say so rather than run slower without a word."""
    items = session.items
    if getattr(session.config.option, "loadgroup", False) and items and not any("@" in item.nodeid for item in items):
        import warnings

        warnings.warn("pytest-xdist did not group the tests (--dist loadgroup): runs are trained on both workers; "
                      "see pytest-xdist#1386 and the pytest pin in pyproject.toml", stacklevel=1)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> DigitsRun:
    """The session's one trained digits run (see ``DigitsRun``): eval, predict and export tests read it; a test
    that changes it works on ``digits_run.copy(tmp_path)``."""
    workdir = tmp_path_factory.mktemp("digits_run")
    result = run_cli("train", str(DIGITS), "--runs-dir", "runs", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    run_line = [line for line in result.stdout.splitlines() if line.startswith("run: ")]
    assert len(run_line) == 1, result.stdout
    return DigitsRun(workdir, workdir / run_line[0][len("run: "):], result)


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
    from cnnctl import train
    from cnnctl.recipe import load_recipe_text

    return train(load_recipe_text(text, "recipe.yaml"), runs_dir=runs_dir, progress=False).run.path


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
