"""Recipes: load (safe YAML with positions), override, validate -> ``Recipe``."""

from cnnctl.recipe.load import dump_recipe, load_recipe, load_recipe_text
from cnnctl.recipe.schema import Recipe

__all__ = ["Recipe", "dump_recipe", "load_recipe", "load_recipe_text"]
