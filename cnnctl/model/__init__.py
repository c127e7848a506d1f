"""The model stage: a recipe's ``model:`` -> ``keras.Model``, and everything Keras a recipe names.

- ``build``: the graph of calls -> keras.Sequential or a functional keras.Model (under the dtype policy of
  ``precision``); ``report``, ``costs`` and ``fields``
  (receptive fields): what ``cnnctl check`` says of it; ``draw``: its picture;
- ``arguments``: the one validator of Keras objects named in a recipe; ``objects``: layers, optimizers,
  losses, metrics; ``schedules``: learning-rate schedules; ``compile``: ``model.compile`` from the recipe;
- ``custom_layers``: cnnctl's own layers; ``saved``: loading ``.keras`` files without trusting them;
- ``zoo``: the docs table of the built-in recipes.

Imports the recipe stage (and the base modules); imports Keras, so import it lazily.
"""

from cnnctl.model.build import Built, build, build_model, summarize
from cnnctl.model.report import check_report

__all__ = ["Built", "build", "build_model", "check_report", "summarize"]
