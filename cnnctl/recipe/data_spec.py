"""The ``data:`` section of a recipe: where the examples come from and how they are fed."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from cnnctl.recipe.fields import Fraction, PositiveInt, Section


class SplitSpec(Section):
    """Fractions of the whole data set held out, drawn seeded and stratified."""

    validation: Fraction = 0.1
    """Share of all examples held out for validation (picks best.keras)."""
    test: Fraction = 0.2
    """Share held out for the final test metrics; validation + test must be below 1."""

    @model_validator(mode="after")
    def _leaves_training_data(self) -> SplitSpec:
        if self.validation + self.test >= 1.0:
            raise ValueError(
                f"validation ({self.validation}) + test ({self.test}) leave nothing to train on; "
                "their sum must be below 1"
            )
        return self


class DataSpec(Section):
    """Where the examples come from and how they are fed."""

    source: Literal["digits"] = "digits"
    """digits: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes, offline), pixels in [0, 1]."""
    split: SplitSpec = SplitSpec()
    """Seeded, stratified held-out splits (see data.split)."""
    batch_size: PositiveInt = 32
    """Examples per training step."""
    shuffle: bool = True
    """Reshuffle the training split every epoch (seeded)."""
    cache: bool = True
    """Keep decoded examples in memory after the first epoch."""
