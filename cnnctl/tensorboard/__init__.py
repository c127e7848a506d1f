"""The TensorBoard stage: what a run logs (``log.tensorboard``) and the server that shows it.

- ``callbacks``: Keras's own TensorBoard callback, writing at epoch ends only, and cnnctl's for images;
- ``images``: training inputs, conv filters and the grids they go in; ``hparams``: the HParams dashboard;
- ``server``: the ``tensorboard`` package's server on a runs folder.

Imports the serving (the confusion matrix), data, model, run and recipe stages; never exports or training.
docs/tensorboard.md lists every tag and folder.
"""
