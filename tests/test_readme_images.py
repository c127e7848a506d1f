"""The README's "Your own images" example, run as a user would: a folder of class folders, check --data, train.

The command runs in-process (CliRunner, from the user's directory), sparing a TensorFlow import each.
"""

import json
import re

import pytest
from PIL import Image

from tests.conftest import ROOT, cli, invoke
from tests.datafiles import write_image_dir

SECTION = (ROOT / "README.md").read_text().split("## Your own images", 1)[1].split("\n## ", 1)[0]
RECIPE = re.search(r"```yaml\n(.*?)```", SECTION, re.S).group(1)


COLOURS = {"one": (60, 200, 60), "two": (60, 60, 220), "zero": (230, 60, 60)}


@pytest.fixture
def project(tmp_path):
    """A user's project folder: photos/<class>/ with 64x64 PNG and JPEG digits tinted by class, and the recipe."""
    photos = write_image_dir(tmp_path / "photos", count=240, classes=3, size=64, mode="RGB")
    for name, colour in COLOURS.items():  # a colour per class: learnable in a few epochs, as real photos are not
        for path in (photos / name).iterdir():
            grey = Image.open(path).convert("L")
            Image.merge("RGB", [grey.point(lambda v, c=c: v * c // 255) for c in colour]).save(path)
    (tmp_path / "my_images.yaml").write_text(RECIPE)
    return tmp_path


def test_check_data_reports_the_folder(project, monkeypatch):
    monkeypatch.chdir(project)
    data = invoke("check", "my_images.yaml", "--data", "--json")["data"]
    assert data["classes"] == ["one", "two", "zero"]  # sorted class folder names
    assert sum(data["sizes"].values()) == 240
    assert data["element"] == {"shape": [64, 64, 3], "dtype": "float32"}
    assert data["normalization"]["normalize"] == "rescale"
    assert data["augment"] == ["RandomFlip", "RandomRotation"]


@pytest.mark.slow
def test_the_readme_recipe_trains_on_an_image_folder_from_another_directory(project, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli("train", str(project / "my_images.yaml"), "--set", "train.epochs=3",
                 "--runs-dir", str(tmp_path / "runs"))  # data.path is relative to the recipe
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    (run,) = (tmp_path / "runs" / "my_images").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["examples"] == {"train": 168, "validation": 24, "test": 48}
    assert metrics["epochs"] == 3 and metrics["test"]["accuracy"] > 0.5  # 3 classes: chance is 1/3
    stored = (run / "recipe.yaml").read_text()
    assert f"path: {project / 'photos'}" in stored  # the run's recipe works from anywhere
