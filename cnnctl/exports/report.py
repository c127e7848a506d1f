"""What ``cnnctl export`` (and the end of ``cnnctl train``) says of an export: the artifact, and how it compared."""

from __future__ import annotations

from typing import Any


def checked_text(record: dict[str, Any]) -> str:
    text = f"max |diff| {record['max_abs_diff']:.2g}"
    if record.get("agreement") is not None:
        text += f", same class {record['agreement']:.1%}"
    if record.get("accuracy") is not None and record.get("keras_accuracy") is not None:
        text += f", accuracy {record['accuracy']:.4f} (Keras {record['keras_accuracy']:.4f})"
    return text


def format_export(record: dict[str, Any]) -> list[str]:
    """What ``cnnctl export`` prints: the artifact, its input and outputs, and how it compared with Keras."""
    label = record["format"] + (f" ({record['quantize']})" if record.get("quantize") else "")
    signature = f", signature '{record['signature']}'" if record.get("signature") else ""
    return [
        f"{label}: {record['path']}",
        f"  input '{record['input']}' {record['input_dtype']} {record['input_shape']}; "
        f"outputs {', '.join(record['outputs'])}{signature}",
        f"  class names: {record['labels']}",
        f"  checked against Keras with {record['runtime']} on {record['checked_examples']} {record['split']} "
        f"examples: {checked_text(record)}",
    ]
