"""keras:NAME data sets whose cached download is damaged (an interrupted download): one message naming the file,
where it is, and what was done about it, never a traceback or a bare "Compressed file ended".

Keras reads KERAS_HOME when it is imported, so each case runs the installed command in
a fresh process with KERAS_HOME pointing at a cache the test writes. Network access is
cut by a proxy that refuses every connection, so the outcome is the same on any machine.
"""

from __future__ import annotations

import gzip
import os

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

RECIPE = ("name: k\ndata: {{source: 'keras:{name}'}}\n"
          "model: {{input: [28, 28, 1], layers: [Flatten, {{Dense: {{units: 10, activation: softmax}}}}]}}\n")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """KERAS_HOME in tmp_path, and no connection (every download goes to a proxy on a closed port)."""
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return home / "datasets"


def check_data(tmp_path, name: str):
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(name=name))
    return run_cli("check", "recipe.yaml", "--data", cwd=tmp_path)


def error_of(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return error


def test_a_damaged_cached_file_keras_does_not_check_is_named_and_deleted(tmp_path, offline):
    folder = offline / "fashion-mnist"
    folder.mkdir()
    files = {}
    for part in ("train", "t10k"):
        for kind, rank in (("labels", 1), ("images", 3)):
            path = folder / f"{part}-{kind}-idx{rank}-ubyte.gz"
            path.write_bytes(gzip.compress(bytes(range(256)) * 40))
            files[kind, part] = path
    cut = files["labels", "train"]  # the first one Keras reads, cut short as by an interrupted download
    cut.write_bytes(cut.read_bytes()[:200])
    error = error_of(check_data(tmp_path, "fashion_mnist"))
    assert "could not load keras:fashion_mnist" in error
    assert f"the cached file {cut} is damaged" in error and "cnnctl deleted it" in error
    assert "download it anew" in error
    assert not cut.exists()
    assert all(path.exists() for path in files.values() if path != cut)  # only the damaged file is deleted


def test_a_cached_file_with_a_wrong_checksum_is_told_when_downloading_it_again_fails(tmp_path, offline):
    partial = offline / "mnist.npz"
    partial.write_bytes(b"PK\x03\x04" + os.urandom(5000))  # the start of a download that stopped
    error = error_of(check_data(tmp_path, "mnist"))
    assert f"the cached file {partial} was incomplete or damaged" in error
    assert "Keras deleted it" in error and "download it anew" in error
    assert not partial.exists()


def test_without_a_cached_file_the_offline_message_names_the_url_and_the_alternatives(tmp_path, offline):
    result = check_data(tmp_path, "mnist")
    error = error_of(result)
    assert "could not load keras:mnist" in error and str(offline) in error
    assert "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz" in error
    assert "source: image_dir" in error and "source: npz" in error and "damaged" not in error
    assert result.stdout == ""  # Keras's "Downloading data from ..." goes to stderr
