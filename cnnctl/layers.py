"""cnnctl's own Keras layers, registered with Keras when this module is imported.

``import cnnctl`` imports no Keras, so it registers nothing: a ``.keras`` file of a model
that uses these layers (a GraphConv recipe's export, say) loads in plain Keras after
``import cnnctl.layers``::

    import cnnctl.layers  # registers GraphConv, SqueezeExcite, LocalResponseNormalization
    import keras

    model = keras.saving.load_model("RUN/export/serving.keras")

Without it Keras fails with "could not be deserialized properly ... Could not locate
class 'GraphConv'". cnnctl's own loader (``cnnctl.load_model``, and every command)
registers them itself.
"""

from cnnctl.model.custom_layers import GraphConv, LocalResponseNormalization, SqueezeExcite

__all__ = ["GraphConv", "LocalResponseNormalization", "SqueezeExcite"]
