"""`cnnctl train --resume`: its flag mistakes are told at once (exit 2, before TensorFlow loads)."""

from __future__ import annotations

import pytest

from tests.conftest import cli


@pytest.mark.parametrize(("args", "message"), [
    ([], "give a RECIPE to train, or --resume RUN to continue a run"),
    (["recipe.yaml", "--force"], "--force goes with --resume RUN"),
    (["--resume", "latest", "--name", "other"], "a resumed run keeps its directory and name"),
    (["--resume", "runs/nope"], "runs/nope: no such run directory"),
])
def test_resume_flag_mistakes_exit_2_with_one_message(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    result = cli("train", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_resume_help_says_what_it_does():
    words = " ".join(cli("train", "--help").output.split())
    assert "--resume RUN Continue RUN (a run directory, or `latest`) from its newest checkpoint" in words
    assert "Ctrl-C or SIGTERM stops after the current step with a checkpoint (exit 130/143)" in words
