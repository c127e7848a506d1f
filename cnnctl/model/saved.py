"""Loading saved ``.keras`` models, in Keras safe mode."""

from __future__ import annotations

from pathlib import Path

import keras

import cnnctl.model.custom_layers  # noqa: F401 (registers cnnctl's layers, so models that use them reload)
from cnnctl.errors import UserError


def load_keras_model(path: str | Path) -> keras.Model:
    """A ``.keras`` model, uncompiled, loaded with ``safe_mode=True`` (no Lambda code runs)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a corrupt or foreign file: say so, without a traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot load as a Keras model: {first}") from None
