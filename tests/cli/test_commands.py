"""The `cnnctl` command: help, check, and errors a user makes.

What only a fresh process shows (TensorFlow not imported, the installed command) runs in a
subprocess; the rest in-process (CliRunner), which spares the ~5 s TensorFlow import each.
"""


import pytest

from tests.conftest import DIGITS, cli, invoke, run_cli

COMMANDS = ["check", "train", "eval", "predict", "export", "tensorboard", "recipes"]

_TRACK_TF = (
    "import sys, atexit\n"
    "atexit.register(lambda: print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow',"
    " file=sys.stderr))\n"
    "from cnnctl.cli import main\nmain()\n"
)


def run_tracking_tf(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", _TRACK_TF, *args], capture_output=True, text=True)


@pytest.mark.parametrize("args", [["--help"], ["--version"], *[[c, "--help"] for c in COMMANDS]])
def test_help_and_version_do_not_import_tensorflow(args):
    result = run_tracking_tf(*args)
    assert result.returncode == 0
    assert result.stdout.strip()
    assert "no tensorflow" in result.stderr


def test_every_command_has_help_text():
    out = invoke("--help")
    for command in COMMANDS:
        assert command in out
        assert len(invoke(command, "--help").splitlines()) > 3


def test_schema_errors_do_not_import_tensorflow(write_recipe):
    path = write_recipe("name: t\nmodel: {input: [8, 8, 1], layers: [Flatten]}\ntrain: {epcohs: 3}\n")
    result = run_tracking_tf("check", str(path))
    assert result.returncode == 2
    assert "no tensorflow" in result.stderr


def test_check_json_reports_the_seed_shapes():
    summary = invoke("check", str(DIGITS), "--json")  # stdout is JSON and nothing else
    assert [layer["output_shape"] for layer in summary["layers"]] == [
        [8, 8, 10], [4, 4, 5], [4, 4, 5], [4, 4, 5], [2, 2, 5], [20], [50], [10]]
    assert summary["params"] == 2135
    assert set(summary["layers"][0]) >= {"name", "class", "output_shape", "params"}


def test_check_table_with_override():
    result = cli("check", str(DIGITS), "--set", "model.layers[0].Conv2D.filters=16")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "(8, 8, 16)" in result.stdout and "Conv2D" in result.stdout
    assert "params: 2,465" in result.stdout  # (9+1)*16 + (9*16+1)*5 + 20 + 1050 + 510
    assert "MACs: 22,236  FLOPs: 44,472 per example" in result.stdout  # 8*8*16*9 + 4*4*5*(9*16) + 1000 + 500
    warnings = result.stderr.splitlines()  # the two uneven SAME paddings, nothing else
    assert [w.split(":")[0] for w in warnings] == ["warning", "warning"], result.stderr


BROKEN = {
    # name: (recipe text or edit, expected location, words in the message)
    "yaml_syntax": ("name: t\nmodel: {input: [8, 8, 1], layers: [Flatten}\n", ":2:", "invalid YAML"),
    "duplicate_key": ("name: t\nseed: 1\nseed: 2\nmodel: {input: [1], layers: [Flatten]}\n", ":3:1",
                      "duplicate key 'seed'"),
    "unknown_section": ("name: t\nmodel: {input: [1], layers: [Flatten]}\ntrian: {}\n", ":3:1",
                        "did you mean 'train'"),
    "unknown_layer": ("name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n    - Flaten\n", ":5:7",
                      "unknown Keras layer 'Flaten' (did you mean 'Flatten'?)"),
    "python_tag": ("name: !!python/name:os.system t\nmodel: {input: [1], layers: [Flatten]}\n", ":1:7",
                   "not allowed"),
    "wrong_units": ("name: t\nmodel:\n  input: [8, 8, 1]\n  layers:\n    - Flatten\n"
                    "    - Dense: {units: 5, activation: softmax}\n", ":6:7", "the data has 10 classes"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_recipe_exits_2_with_a_located_message(case, write_recipe):
    text, where, words = BROKEN[case]
    path = write_recipe(text)
    if case == "wrong_units":  # only training knows the data's class count
        result = cli("train", str(path), "--runs-dir", str(path.parent / "runs"))
    else:
        result = cli("check", str(path))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}{where}"), lines[0]
    assert words in lines[0]


def test_missing_recipe_file(tmp_path):
    result = run_cli("check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.yaml'}: no such file"


@pytest.mark.parametrize("run", ["missing-dir", "latest"])
def test_eval_without_a_run_exits_2(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("eval", run, "--runs-dir", str(tmp_path / "runs"))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output and result.stderr.startswith("error: ")
