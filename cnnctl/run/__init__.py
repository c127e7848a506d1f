"""The run stage: what a run directory holds and how it is found, created, locked and written.

Owns every file and folder name of a run (``layout``), ``Run`` (create, lock, atomic
JSON and model writes) and the one run finder (``find_run``). Imports only
``cnnctl.errors`` and ``cnnctl.filekinds``: no TensorFlow, no other stage.
"""

from cnnctl.run import layout
from cnnctl.run.find import find_run, is_run, latest_run, run_of
from cnnctl.run.rundir import Run, WriteError, atomic_write_text, save_model_atomic

__all__ = ["Run", "WriteError", "atomic_write_text", "find_run", "is_run", "latest_run", "layout", "run_of",
           "save_model_atomic"]
