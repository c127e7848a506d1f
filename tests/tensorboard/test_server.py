"""`cnnctl tensorboard RUNS --port P`: the real command in a subprocess, queried through TensorBoard's HTTP API.

A tiny real run (digits, one epoch) is served on a free loopback port; the test
finds the run, its scalar and image tags, one scalar series (against history.csv),
one image (a PNG of the size the tag says) and the hparams experiment, then stops
the server with Ctrl-C (SIGINT) and checks that it exits cleanly.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest
from PIL import Image

from tests.conftest import cli

pytestmark = pytest.mark.slow

RECIPE = """
name: served
data: {batch_size: 128}
model:
  input: [8, 8, 1]
  layers:
    - Conv2D: {filters: 4, kernel_size: 3, padding: same, activation: relu}
    - Flatten
    - Dense: {units: 10, activation: softmax}
train: {epochs: 2}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from cnnctl import train
    from cnnctl.recipe import load_recipe_text

    folder = tmp_path_factory.mktemp("served") / "runs"
    result = train(load_recipe_text(RECIPE, "served.yaml"), runs_dir=folder, progress=False)
    return folder, result.run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: bytes | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def get_json(url: str, data: dict | None = None):
    return json.loads(get(url, json.dumps(data).encode() if data is not None else None))


def start(runs_dir, port: int, *, sigint_ignored: bool = False) -> tuple[subprocess.Popen, str, queue.Queue]:
    """Start the command; return it, the address it printed, and its stdout lines to come.

    ``sigint_ignored``: start it as a background job of a non-interactive shell does, with SIGINT ignored.
    """
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "cnnctl", "tensorboard", str(runs_dir), "--port", str(port)]
    if sigint_ignored:  # an ignored signal stays ignored across exec, as it does for a shell's background job
        command = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "os.execv(sys.argv[1], sys.argv[1:])", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                pytest.fail(f"cnnctl tensorboard exited {process.returncode}: {process.stderr.read()[-2000:]}")
            continue
        if line.startswith("TensorBoard at "):
            return process, line.split()[2], lines
    process.kill()
    pytest.fail("cnnctl tensorboard printed no address in 90 s")


def test_tensorboard_serves_the_run_and_stops_on_ctrl_c(runs):
    folder, run = runs
    port = free_port()
    process, url, _ = start(folder, port)
    try:
        assert url == f"http://127.0.0.1:{port}/"
        name = f"served/{run.path.name}/logs"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and name + "/validation" not in get_json(url + "data/runs"):
            time.sleep(0.5)  # TensorBoard loads the folder in the background
        assert set(get_json(url + "data/runs")) == {name, f"{name}/train", f"{name}/validation"}

        scalar_tags = get_json(url + "data/plugin/scalars/tags")
        assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(scalar_tags[f"{name}/train"])
        assert {"epoch_loss", "epoch_accuracy"} <= set(scalar_tags[f"{name}/validation"])
        query = urllib.parse.urlencode({"run": f"{name}/validation", "tag": "epoch_loss"})
        series = get_json(url + "data/plugin/scalars/scalars?" + query)  # [[wall time, step, value], ...]
        with open(run / "history.csv") as f:
            expected = [float(row["val_loss"]) for row in csv.DictReader(f)]
        assert [step for _, step, _ in series] == [0, 1]
        assert [value for _, _, value in series] == pytest.approx(expected, rel=1e-6)

        image_tags = get_json(url + "data/plugin/images/tags")
        assert set(image_tags[name]) == {"train_inputs", "conv_filters", "confusion_matrix/validation"}
        query = urllib.parse.urlencode({"run": name, "tag": "confusion_matrix/validation"})
        entries = get_json(url + "data/plugin/images/images?" + query)
        assert [entry["step"] for entry in entries] == [0, 1]
        png = get(url + "data/plugin/images/individualImage?" + entries[-1]["query"])
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 200

        experiment = get_json(url + "data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {info["name"] for info in experiment["hparamInfos"]}
        assert {"data.batch_size", "train.optimizer", "train.learning_rate", "model.params"} <= hparams
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("cnnctl tensorboard did not stop on SIGINT")
    assert process.returncode == 0, process.stderr.read()[-2000:]
    with socket.socket() as s:  # the port is free again
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_a_run_with_two_graphs_is_served_without_tensorboards_warning(runs, tmp_path):
    """A run resumed by an earlier cnnctl holds a graph in each training process's logs/train file; TensorBoard's
    loader printed "Found more than one graph event per run ..." for it on every load. Not on cnnctl's stderr."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.summary.writer.record_writer import RecordWriter

    _, run = runs
    copy = tmp_path / "runs" / "served" / run.path.name
    shutil.copytree(run.path, copy)
    train = copy / "logs" / "train"
    (events,) = train.glob("events.out.tfevents.*")
    graph = next(event for event in EventFileLoader(str(events)).Load() if event.HasField("graph_def"))
    with open(train / "events.out.tfevents.1.earlier.0.v2", "wb") as f:  # read first: the run's own graph is second
        RecordWriter(f).write(graph.SerializeToString())
    process, url, _ = start(tmp_path / "runs", free_port())
    try:
        query = urllib.parse.urlencode({"run": f"served/{run.path.name}/logs/train", "tag": "epoch_loss"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the scalars follow the run's graph in its file
            if f"served/{run.path.name}/logs/train" in get_json(url + "data/runs") \
                    and len(get_json(url + "data/plugin/scalars/scalars?" + query)) == 2:
                break
            time.sleep(0.5)
        else:
            pytest.fail("TensorBoard did not load the run's training scalars in 60 s")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    stderr = process.stderr.read()
    assert process.returncode == 0, stderr[-2000:]
    assert "graph event" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["TensorBoard stopped"], stderr


def test_a_busy_port_is_named(runs, tmp_path):
    # In-process: the command stops before serving, and before it changes any signal handler.
    folder, _ = runs
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("tensorboard", str(folder), "--port", str(port))
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_a_missing_runs_folder_is_a_user_error(tmp_path):
    result = cli("tensorboard", str(tmp_path / "nowhere"))
    assert result.exit_code == 2, (result.output, result.exception)
    assert "nowhere does not exist" in result.stderr and "Traceback" not in result.output


def test_ctrl_c_stops_it_even_when_started_with_sigint_ignored(runs):
    """A background job of a non-interactive shell inherits SIGINT ignored; Ctrl-C must still stop the server."""
    folder, _ = runs
    process, url, _ = start(folder, free_port(), sigint_ignored=True)
    try:
        assert get_json(url + "data/runs") is not None
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


def test_train_with_tensorboard_serves_the_runs_while_it_trains(tmp_path):
    """`cnnctl train --tensorboard` prints the address on stderr and serves the runs folder until it ends."""
    recipe = tmp_path / "served.yaml"
    recipe.write_text(RECIPE.replace("epochs: 2", "epochs: 40"))
    runs_dir = tmp_path / "runs"
    process = subprocess.Popen([sys.executable, "-m", "cnnctl", "train", str(recipe), "--runs-dir", str(runs_dir),
                                "--tensorboard"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        url = None
        while url is None:
            line = lines.get(timeout=90)
            if line.startswith("TensorBoard at "):
                url = line.split()[2]
        served = []
        while process.poll() is None and not any(r.endswith("/logs/train") for r in served):
            served = get_json(url + "data/runs")  # the run appears while it trains
            time.sleep(0.5)
        assert any(r.startswith("served/") and r.endswith("/logs/train") for r in served), served
        stdout, _ = process.communicate(timeout=180)
    finally:
        process.kill()
    assert process.returncode == 0
    assert stdout.splitlines()[-1].startswith("run: ")
    with pytest.raises(OSError):  # the server ended with the training
        get(url + "data/runs")
