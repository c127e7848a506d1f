"""The training stage: a recipe -> a trained run directory, resumable to the same result after any crash.

- ``preflight``: every check that can reject a recipe, before a run exists (``prepare``);
  ``fit_checks`` and ``options`` are those about the data's shapes and ``train:``'s settings;
- ``check``: ``cnnctl check`` (the model explained, and the checks above);
- ``callbacks``: the recipe's Keras callbacks, vetted;
- ``trainer``: ``train`` -> ``fit`` -> model.keras, test metrics (``metrics``), exports;
- ``state`` and ``checkpoint``: what a checkpoint holds, written and restored through two callbacks;
- ``resume``: ``--resume``'s recipe, and continuing a run from its newest checkpoint;
- ``summary``: what ``cnnctl train`` prints at the end.

Imports the stages before it (recipe, run, model, data, serving, exports, tensorboard); nothing imports it but
the API.
"""
