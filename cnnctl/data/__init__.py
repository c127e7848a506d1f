"""Recipe.data -> tf.data pipelines (imports TensorFlow: import this lazily)."""

from cnnctl.data.pipeline import Datasets, build_datasets, split_indices

__all__ = ["Datasets", "build_datasets", "split_indices"]
