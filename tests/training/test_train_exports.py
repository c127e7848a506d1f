"""The exports ``cnnctl train`` writes after training: a failed or interrupted export leaves a completed run with
its test metrics and summary, the export recorded with its reason, and ``cnnctl export`` writes it later
(issue 16, item 16).

The failing export is real: ``broken_copy`` (as in tests/exports/test_format_registry.py) reloads 0.01 off, and
the writer's own check against Keras refuses it. The interrupted one raises KeyboardInterrupt from its writer,
as Ctrl-C would in the middle of a conversion.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cnnctl.cli import main
from cnnctl.exports.format import Format
from cnnctl.registry import FORMATS
from tests.exports.test_format_registry import is_copy, load_broken, load_copy, write_copy

RECIPE = """\
name: exports
data: {source: digits, split: {validation: 0.1, test: 0.2}}
model:
  input: [8, 8, 1]
  layers: [Flatten, {Dense: {units: 10, activation: softmax}}]
train: {epochs: 1}
log: {tensorboard: false}
export: [EXPORTS]
"""


def interrupting_write(serving, path, options, data) -> dict:
    raise KeyboardInterrupt


@pytest.fixture
def formats():
    rows = [Format(name="broken_copy", file_name="broken.keras", suffix=".keras", write=write_copy,
                   load=load_broken, recognizes=is_copy),
            Format(name="interrupted_copy", file_name="copy.keras", suffix=".keras", write=interrupting_write,
                   load=load_copy, recognizes=is_copy)]
    for row in rows:
        FORMATS.register(row)
    yield
    for row in rows:
        FORMATS.unregister(row.name)


def train(tmp_path, exports: str):
    recipe = tmp_path / "exports.yaml"
    recipe.write_text(RECIPE.replace("EXPORTS", exports))
    result = CliRunner().invoke(main, ["train", str(recipe), "--runs-dir", str(tmp_path / "runs")])
    (run,) = (tmp_path / "runs" / "exports").iterdir()
    return result, run, json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_a_failed_export_leaves_a_completed_run_with_its_summary_and_the_reason(formats, tmp_path):
    result, run, metrics = train(tmp_path, "broken_copy, keras")
    assert result.exit_code == 1, result.output
    assert metrics["status"] == "completed" and set(metrics["test"]) == {"loss", "accuracy"}  # kept
    failed = metrics["exports"]["broken_copy"]
    assert "disagrees with the Keras model" in failed["error"] and "path" not in failed
    assert "error" not in metrics["exports"]["keras"]  # the export after the failed one is written all the same
    assert (run / "export" / "serving.keras").is_file()
    lines = result.stdout.splitlines()
    assert lines[0].startswith("split") and lines[-1] == f"run: {run}"  # the whole summary
    (line,) = [line for line in lines if line.startswith("export broken_copy:")]
    assert "FAILED: " in line and line.endswith(f"(retry: cnnctl export broken_copy {run})")
    assert "warning: the broken_copy export failed: " in result.stderr
    assert result.stderr.rstrip().endswith("error: broken_copy: not exported (see the summary); the run itself is "
                                           "complete")

    resumed = CliRunner().invoke(main, ["train", "--resume", str(run)])  # no doomed retry of the export
    assert "nothing to resume" in resumed.stderr and "warning: the broken_copy export failed" not in resumed.stderr
    assert resumed.exit_code == 1 and line in resumed.stdout.splitlines()  # the summary again, with the retry


@pytest.mark.slow
def test_an_interrupted_export_is_recorded_and_cnnctl_export_writes_it_later(formats, tmp_path):
    result, run, metrics = train(tmp_path, "keras, interrupted_copy")
    assert result.exit_code == 130
    assert metrics["status"] == "completed" and "test" in metrics
    assert "error" not in metrics["exports"]["keras"]
    assert metrics["exports"]["interrupted_copy"]["error"].startswith("not written: cnnctl train stopped")
    assert result.stderr.strip().splitlines()[-1] == (
        f"interrupted while exporting interrupted_copy; training had finished ({run / 'model.keras'}, status "
        f"completed). Write the missing exports with: cnnctl export interrupted_copy {run}")

    FORMATS.unregister("interrupted_copy")  # the conversion works this time
    FORMATS.register(Format(name="interrupted_copy", file_name="copy.keras", suffix=".keras", write=write_copy,
                            load=load_copy, recognizes=is_copy))
    exported = CliRunner().invoke(main, ["export", "interrupted_copy", str(run)])
    assert exported.exit_code == 0, exported.output
    record = json.loads((run / "metrics.json").read_text())["exports"]["interrupted_copy"]
    assert "error" not in record and record["path"] == str((run / "export" / "copy.keras").resolve())
