"""Recipe.model -> keras.Model (imports Keras: import this lazily)."""

from cnnctl.model.build import Built, build, build_model, summarize
from cnnctl.model.report import check_report

__all__ = ["Built", "build", "build_model", "check_report", "summarize"]
