"""A file of a run is replaced whole or not at all: a write that fails half-way leaves the previous file as it was.

metrics.json, history.csv, recipe.yaml, labels (``atomic_write_text``) and model.keras, best.keras
(``save_model_atomic``) are written under a temporary name and renamed over the old file only once whole.
Each test here keeps a previous file, makes a real write of a new one fail part-way, and checks that the
previous file is byte for byte what it was and that no temporary file is left:

- text that has no UTF-8 encoding (a lone surrogate, as a file name that is not UTF-8 gives in Python):
  the encoder raises in the middle of the write;
- a model whose layer holds an object Keras cannot serialize: ``model.save`` has opened its file when it
  raises;
- a file-size limit (``RLIMIT_FSIZE``, what a full disk or quota does to a writer: ``File too large``),
  set in a child process, so that the operating system refuses the write after the first bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from cnnctl.run import Run, atomic_write_text, layout, save_model_atomic


def leftovers(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if layout.is_temporary(entry.name))


def test_a_text_write_whose_encoding_fails_half_way_leaves_the_previous_file(tmp_path):
    run = Run(tmp_path)
    run.write_json(layout.METRICS, {"status": "completed", "epochs": 3})
    before = (tmp_path / layout.METRICS).read_bytes()
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(tmp_path / layout.METRICS, '{"status": "exporting", "class": "caf\udce9"}\n')
    assert (tmp_path / layout.METRICS).read_bytes() == before
    assert run.metrics() == {"status": "completed", "epochs": 3}
    assert leftovers(tmp_path) == []  # the temporary file is removed whatever the failure


def child(script: str, *args: str, limit: int) -> subprocess.CompletedProcess:
    """``script`` in a Python process whose files may not grow beyond ``limit`` bytes (EFBIG past it)."""
    prologue = textwrap.dedent(f"""\
        import resource, signal, sys
        from pathlib import Path
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG rather than killing us
        def limited():
            resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(script), *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_a_text_write_the_system_refuses_half_way_leaves_the_previous_file(tmp_path):
    path = tmp_path / layout.HISTORY
    previous = "epoch,loss\n" + "".join(f"{i},{1 / (i + 1):.6f}\n" for i in range(20))
    atomic_write_text(path, previous)
    done = child("""\
        from cnnctl.run import WriteError, atomic_write_text
        limited()
        try:
            atomic_write_text(Path(sys.argv[1]), "epoch,loss\\n" + "1,0.5\\n" * 20_000)
        except WriteError as exc:
            print(exc)
        """, str(path), limit=4096)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"cannot write {path}: File too large"), done.stdout
    assert path.read_text() == previous  # not its first 4096 bytes of the new text
    assert leftovers(tmp_path) == []


def holding(thing):
    """A model whose last layer's config holds ``thing``, which Keras may not know how to serialize."""
    import keras

    class Holding(keras.layers.Layer):
        def get_config(self):
            return {**super().get_config(), "thing": thing}

    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense"), Holding()])


@pytest.mark.parametrize("name", [layout.BEST, layout.MODEL])
def test_a_model_whose_save_fails_half_way_leaves_the_previous_model(name, tmp_path):
    import keras
    import numpy as np

    previous = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    save_model_atomic(previous, tmp_path / name)
    before = (tmp_path / name).read_bytes()
    with pytest.raises(TypeError, match="Cannot serialize"):  # raised with the file open for writing
        save_model_atomic(holding(threading.Lock()), tmp_path / name)
    assert (tmp_path / name).read_bytes() == before
    reloaded = keras.saving.load_model(tmp_path / name)
    for a, b in zip(reloaded.get_weights(), previous.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_model_save_the_system_refuses_half_way_leaves_the_previous_model(tmp_path):
    done = child("""\
        import keras, numpy as np
        from cnnctl.run import WriteError, save_model_atomic
        path = Path(sys.argv[1])
        small = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        save_model_atomic(small, path)
        before = path.read_bytes()
        big = keras.Sequential([keras.Input((300,)), keras.layers.Dense(300)])  # 361 kB of weights
        limited()
        try:
            save_model_atomic(big, path)
        except WriteError as exc:
            print(exc)
        print(path.read_bytes() == before)
        """, str(tmp_path / layout.BEST), limit=64 * 1024)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [f"cannot write {tmp_path / layout.BEST}: File too large", "True"], done.stdout
    assert leftovers(tmp_path) == []
