"""Recipe.model -> keras.Model (imports Keras: import this lazily)."""

from cnnctl.model.build import build_model, summarize, summary_dict

__all__ = ["build_model", "summarize", "summary_dict"]
