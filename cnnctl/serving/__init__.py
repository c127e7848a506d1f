"""The serving stage: a trained run's model put to use as training left it.

- ``model``: the serving model (the run's preprocessing in front of the trained model), loaded from a run, a
  ``.keras`` file inside one, or a ``.keras`` file of its own;
- ``evaluate`` (with ``eval_data``: what it measures on) and ``predict``;
- ``outputs``: how a model's outputs are read as classes; ``confusion``: the confusion matrix and its picture.

Imports the data, model, run and recipe stages; never exports, tensorboard or training.
"""
