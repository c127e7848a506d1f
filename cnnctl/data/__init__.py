"""The data stage: a recipe's ``data:`` section and seed -> tf.data pipelines for the train, validation and test splits.

- ``sources/``: where examples come from, one file per source (a registry);
- ``pipeline``: split, cache, shuffle, batch, preprocess, prefetch (``build_datasets``);
- ``preprocess``: augmentation and normalization, defined once as Keras layers and as a
  tf.data transform (training, serving, TensorBoard images and eval all use it);
- ``record``: what a run stores of its data (data.json), typed;
- ``report``: what ``cnnctl check --data`` says about the data.

Imports the recipe, run and model stages (the model stage's argument validator builds
augmentation layers); never training, serving or export. This package imports nothing
itself, so that the recipe stage can read the source declarations without TensorFlow.
"""
