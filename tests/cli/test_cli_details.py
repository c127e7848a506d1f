"""Small things a new user meets in the commands: run names, built-in recipe names, --json, hints, help, columns.

In-process (CliRunner); the tests that need a trained model share the session's digits run.
"""

from __future__ import annotations

import pytest

import cnnctl
from cnnctl.errors import UserError
from tests.conftest import DIGITS, cli


def test_a_bad_run_name_is_blamed_on_the_name_option(tmp_path):
    result = cli("train", str(DIGITS), "--name", "my run", "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "--name" in result.stderr and "--set" not in result.stderr and "'my_run'" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_api_says_name_for_a_bad_run_name(tmp_path):
    with pytest.raises(UserError, match=r"^name: a run name is letters") as caught:
        cnnctl.train(DIGITS, name="my run", runs_dir=tmp_path / "runs")
    assert "--set" not in str(caught.value)
