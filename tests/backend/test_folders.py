"""The torch-free ImageFolder check the New study page runs where the path is typed."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from backend.data import load_task
from backend.specs import DataSpec, SpecError, parse
from backend.specs.folders import image_folder
from tests.backend.files import write_image_folder


def refused(root) -> str:
    with pytest.raises(SpecError) as info:
        image_folder(str(root))
    assert info.value.field == "data.source.root"
    return str(info.value)


def test_empty_and_missing_paths_are_refused(tmp_path):
    assert "no folder given" in refused("") and "no folder given" in refused("  ")
    assert "not a readable folder" in refused(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"")
    assert "not a readable folder" in refused(tmp_path / "file.png")


def test_images_in_the_root_without_class_folders_are_refused(tmp_path):
    for i in range(3):
        Image.new("L", (4, 4)).save(tmp_path / f"{i}.png")
    assert "holds 3 image(s) directly" in refused(tmp_path)
    (tmp_path / "empty").mkdir()
    assert "no class sub-folders" in refused(tmp_path / "empty")


def test_a_class_folder_without_images_is_refused(tmp_path):
    write_image_folder(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "bird").mkdir()
    (tmp_path / "bird" / "notes.txt").write_text("no images here")
    message = refused(tmp_path)
    assert "bird" in message and "holds no images" in message


def test_half_a_train_test_layout_and_one_class_are_refused(tmp_path):
    write_image_folder(tmp_path / "split" / "train", {"a": 2, "b": 2})
    assert "has train/ but no test/" in refused(tmp_path / "split")
    write_image_folder(tmp_path / "one", {"a": 2})
    assert "a task needs at least 2" in refused(tmp_path / "one")


def test_train_test_layout_counts_per_split(tmp_path):
    write_image_folder(tmp_path / "train", {"cat": 4, "dog": 3})
    write_image_folder(tmp_path / "test", {"cat": 2}, seed=1)
    (tmp_path / "train" / "cat" / "more").mkdir()
    Image.new("RGB", (12, 12)).save(tmp_path / "train" / "cat" / "more" / "x.JPG")  # nested, upper case
    folder = image_folder(str(tmp_path))
    assert folder.classes == ("cat", "dog") and folder.layout.startswith("train/")
    assert folder.counts() == {"train": {"cat": 5, "dog": 3}, "test": {"cat": 2, "dog": 0}}
    write_image_folder(tmp_path / "test", {"cow": 1})
    assert "test/ has classes missing from train/: ['cow']" in refused(tmp_path)


def test_one_tree_layout_counts_and_matches_what_the_source_decodes(tmp_path):
    write_image_folder(tmp_path, {"b": 5, "a": 4, ".hidden": 2})
    folder = image_folder(str(tmp_path))
    assert folder.classes == ("a", "b") and folder.counts() == {"all": {"a": 4, "b": 5}}
    task = load_task(parse(DataSpec, {"source": {"kind": "folder", "root": str(tmp_path)}}))
    assert task.classes == folder.classes and len(task.train) + len(task.test) == 9


def test_the_worker_refuses_a_malformed_folder_with_the_same_message(tmp_path):
    write_image_folder(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "bird").mkdir()
    with pytest.raises(SpecError, match="holds no images"):
        load_task(parse(DataSpec, {"source": {"kind": "folder", "root": str(tmp_path)}}))


def test_the_check_is_torch_free():
    code = "import sys, backend.specs.folders; assert 'torch' not in sys.modules and 'PIL' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
