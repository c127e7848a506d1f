"""cnnctl train against the same training written by hand in Keras, in one process, turn about.

The network, data and split are recipes/digits_cnn.yaml's (scikit-learn digits, batch 8,
Adam 1e-3); the hand-written side is the short Keras script a user would write: a
shuffled, batched, prefetched tf.data pipeline and ``model.fit(verbose=2)``. cnnctl runs
as shipped (checkpoints at every epoch end, the NaN check after every step, TensorBoard
logs) and with TensorBoard off. Each side is timed ``--repeats`` times, alternating; the
table gives the median fit time and the ratio of training images per second (cnnctl over
Keras: 1.00 is as fast, below is slower).

    python benchmarks/train_speed.py [--epochs 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "digits_cnn.yaml"


def hand_written(epochs: int, seed: int = 42) -> tuple[float, int]:
    """The Keras script: (fit seconds, training examples)."""
    import keras
    import tensorflow as tf
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(seed)
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int32")
    x_rest, _, y_rest, _ = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.125, stratify=y_rest,
                                                      random_state=seed)
    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(len(x_train), seed=seed).batch(8)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(8)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(10, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(5, 3, strides=2, padding="same", kernel_regularizer=keras.regularizers.l2(1e-4)),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(3, strides=2, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(train.prefetch(tf.data.AUTOTUNE), validation_data=val.prefetch(tf.data.AUTOTUNE), epochs=epochs,
                  shuffle=False, verbose=2)
    return time.perf_counter() - started, len(x_train)


def with_cnnctl(epochs: int, tensorboard: bool) -> tuple[float, int]:
    """cnnctl's training of the same recipe: (fit seconds as metrics.json records them, training examples)."""
    import cnnctl

    overrides = [f"train.epochs={epochs}", "export=[]", f"log.tensorboard={str(tensorboard).lower()}"]
    with tempfile.TemporaryDirectory() as runs, contextlib.redirect_stderr(io.StringIO()):
        metrics = cnnctl.train(RECIPE, overrides, runs_dir=runs).metrics
    return metrics["train_seconds"], metrics["examples"]["train"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sides = {"Keras by hand": lambda: hand_written(args.epochs),
             "cnnctl, as shipped": lambda: with_cnnctl(args.epochs, tensorboard=True),
             "cnnctl, TensorBoard off": lambda: with_cnnctl(args.epochs, tensorboard=False)}
    for run in sides.values():  # warm up: the first training in a process pays for tracing and imports
        run()
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    examples = {}
    for _ in range(args.repeats):
        for name, run in sides.items():
            took, examples[name] = run()
            seconds[name].append(took)
    base = statistics.median(seconds["Keras by hand"])
    base_rate = examples["Keras by hand"] * args.epochs / base
    print(f"digits_cnn, {args.epochs} epochs at batch 8, median of {args.repeats} (fit seconds)")
    print(f"{'side':<26}{'seconds':>9}{'images/s':>10}{'ratio':>7}")
    for name, values in seconds.items():
        median = statistics.median(values)
        rate = examples[name] * args.epochs / median
        print(f"{name:<26}{median:>9.2f}{rate:>10,.0f}{rate / base_rate:>7.2f}")
    print("all: " + "; ".join(f"{n}: {', '.join(f'{v:.2f}' for v in vs)}" for n, vs in seconds.items()),
          file=sys.stderr)


if __name__ == "__main__":
    main()
