"""cnnctl.serving.confusion: counts against hand-made labels, metrics against scikit-learn, the picture and its PNG."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from cnnctl.pictures import font, write_png
from cnnctl.serving.confusion import confusion_matrix, per_class, render_confusion, summary


def test_counts_by_hand():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 1, 0, 1, 1, 2, 0, 2, 1]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[2, 1, 0],
                           [0, 2, 0],
                           [1, 1, 2]]


def test_absent_classes_and_empty_input():
    cm = confusion_matrix([0, 0], [0, 0], 4)
    assert cm.shape == (4, 4) and cm[0, 0] == 2 and cm.sum() == 2
    assert confusion_matrix([], [], 3).tolist() == [[0] * 3] * 3


def test_labels_outside_the_classes_are_an_error():
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix([0, 1], [0], 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 7
    y_true = rng.integers(0, n - 1, 300)  # class 6 never present: recall undefined
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, n, 300))
    y_pred[y_pred == 3] = 4  # class 3 never predicted: precision undefined
    cm = confusion_matrix(y_true, y_pred, n)
    assert np.array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=range(n)))
    labels = list(range(n))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for 0/0
        rows = per_class(cm, [f"c{i}" for i in range(n)])
        totals = summary(cm)
    assert [row["name"] for row in rows] == [f"c{i}" for i in range(n)]
    assert rows[3]["precision"] == 0.0 and rows[6]["recall"] == 0.0 and rows[6]["support"] == 0
    np.testing.assert_allclose([row["precision"] for row in rows], p)
    np.testing.assert_allclose([row["recall"] for row in rows], r)
    np.testing.assert_allclose([row["f1"] for row in rows], f)
    assert [row["support"] for row in rows] == s.tolist()
    assert totals["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert totals["examples"] == 300
    for average in ("macro", "weighted"):  # over the classes that occur, scikit-learn's default
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        assert totals[f"{average}_precision"] == pytest.approx(p)
        assert totals[f"{average}_recall"] == pytest.approx(r)
        assert totals[f"{average}_f1"] == pytest.approx(f)


def test_classes_that_never_occur_do_not_lower_the_macro_average():
    """A folder holding two of three classes, every example right: macro scores are 1, not 2/3."""
    cm = confusion_matrix([0, 0, 2, 2], [0, 0, 2, 2], 3)
    totals = summary(cm)
    assert totals["macro_precision"] == totals["macro_recall"] == totals["macro_f1"] == 1.0
    assert totals["accuracy"] == 1.0


def test_summary_of_nothing():
    totals = summary(np.zeros((3, 3), np.int64))
    assert totals["accuracy"] == 0.0 and totals["macro_f1"] == 0.0 and totals["examples"] == 0


@pytest.mark.parametrize("n", [2, 10, 30, 100])
def test_render_shape_and_colours(n):
    rng = np.random.default_rng(n)
    y = rng.integers(0, n, 2000)
    cm = confusion_matrix(y, y, n)  # a perfect diagonal: dark diagonal, white elsewhere
    image = render_confusion(cm, [f"class number {i} with a long name" for i in range(n)], title="validation")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 100 <= image.shape[0] <= 1100 and 100 <= image.shape[1] <= 1100
    # the bottom-right cell is the last class on the diagonal (full row share: dark blue),
    # the one left of it an off-diagonal zero (white)
    cell = max(2, min(48, 800 // n))
    bottom, right = image.shape[0] - 6, image.shape[1] - 6
    corner = image[bottom - cell // 4, right - cell // 4].astype(int)
    beside = image[bottom - cell // 4, right - cell - cell // 4].astype(int)
    assert corner.sum() < 250 and beside.sum() > 700, (corner, beside)


def test_counts_drawn_only_for_few_classes():
    cm = np.diag([5, 5]).astype(np.int64)
    plain = render_confusion(np.zeros((2, 2), np.int64) + np.eye(2, dtype=np.int64), ["a", "b"])
    counted = render_confusion(cm, ["a", "b"])
    assert plain.shape == counted.shape and not np.array_equal(plain, counted)  # same colours, other numbers


def test_font_is_public_cached_and_sized():
    small, large = font(10), font(20)
    assert font(10) is small  # loaded once per size
    assert large.getbbox("8")[3] > small.getbbox("8")[3]  # FreeType here: a scalable font


def test_rejects_a_matrix_that_is_not_square():
    with pytest.raises(ValueError, match="square"):
        render_confusion(np.zeros((2, 3), np.int64), ["a", "b"])


def test_write_png_is_readable_and_atomic(tmp_path):
    cm = confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3)
    image = render_confusion(cm, ["cat", "dog", "bird"], title="test")
    path = write_png(image, tmp_path / "confusion.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (image.shape[1], image.shape[0]) and png.mode == "RGB"
        assert np.array_equal(np.asarray(png), image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png"]  # no temporary left behind
    write_png(np.zeros((4, 5), np.uint8), path)  # grey, over the old file
    with Image.open(path) as png:
        assert png.size == (5, 4) and png.mode == "L"
