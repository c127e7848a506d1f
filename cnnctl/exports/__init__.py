"""The export stage: a run's model, with its preprocessing in front, -> artifacts checked against Keras.

- ``format``: what an export format is (one row: name, file, options, extra, write,
  load, tolerance); ``formats/``: one file per format, registered in
  ``cnnctl.registry.FORMATS`` (savedmodel, keras, tflite, onnx);
- ``writer``: ``export_run`` (a finished run) and ``write_export`` (at the end of
  training): write to a temporary name, reload, compare, rename;
- ``check``: the comparison with the Keras serving model on held-out examples;
- ``serving_forms``: the serving model in inference mode, and its float32 twin.

Imports the recipe, run, model, data and serving stages; never training. This
package imports nothing itself, so that the recipe stage can read the format
declarations without TensorFlow.
"""
