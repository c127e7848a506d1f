"""The recipe stage: a recipe file -> a validated ``Recipe``, without TensorFlow.

- ``yaml_loader``: safe YAML that remembers where each value was written; ``overrides``: ``--set``;
- ``schema`` (with one module per section: ``data_spec``, ``model_spec``, ``train_spec``, ``export_spec``,
  and ``fields`` for what they share), ``limits``: what would not fit in memory, ``load``: all of it in order;
- ``graph`` and ``calls``: the model section as a flat list of layer calls (blocks, ``from``, ``share``);
- ``catalogue``: the built-in recipes; ``reference``: the docs table of every key.

Imports only the base modules (errors, registry: the data sources and export formats it validates against).
"""

from cnnctl.recipe.load import dump_recipe, load_recipe, load_recipe_text
from cnnctl.recipe.schema import Recipe

__all__ = ["Recipe", "dump_recipe", "load_recipe", "load_recipe_text"]
