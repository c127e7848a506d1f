"""cnnctl: YAML recipes in, trained and exported Keras 3 models out."""

__version__ = "0.1.0"
