import numpy as np
import pytest
import torch

from backend.data import load_task
from backend.specs import DataSpec, SpecError, parse
from tests.backend.files import write_image_folder, write_mnist


def task(source, **extra):
    return load_task(parse(DataSpec, {"source": source, **extra}))


def test_digits_is_real_and_stratified():
    data = task({"kind": "digits"})
    assert data.n_classes == 10 and data.image_shape == (1, 8, 8)
    assert len(data.train) + len(data.test) == 1797
    assert data.train.x.dtype == torch.uint8 and data.train.x.max() == 255
    # every class keeps about a fifth of its images for testing
    share = torch.bincount(data.test.y) / (torch.bincount(data.test.y) + torch.bincount(data.train.y))
    assert ((share - 0.2).abs() < 0.02).all()


def test_synthetic_is_deterministic_per_seed():
    src = {"kind": "synthetic", "n_classes": 4, "train_per_class": 5, "test_per_class": 3, "size": 12}
    a, b = task(src), task(src)
    c = task({**src, "class_seed": 1})
    assert torch.equal(a.train.x, b.train.x) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.train.x, c.train.x)
    assert a.image_shape == (1, 12, 12) and len(a.train) == 20 and len(a.test) == 12
    assert not torch.equal(a.train.x[:4], a.test.x[:4])  # test images are new draws


def test_synthetic_gap_moves_images_continuously():
    src = {"kind": "synthetic", "n_classes": 3, "train_per_class": 8, "size": 16}
    images = [task({**src, "gap": g}).train.x.float() for g in (0.0, 0.25, 0.5, 1.0)]
    dist = [(images[0] - x).abs().mean().item() for x in images]
    assert dist[0] == 0 and dist[1] < dist[2] < dist[3]  # further gap, further images


def test_torchvision_mnist_from_idx_files(tmp_path):
    x_train, y_train, x_test, y_test = write_mnist(tmp_path, n_train=30, n_test=10)
    data = task({"kind": "torchvision", "name": "MNIST", "root": str(tmp_path)})
    assert data.image_shape == (1, 28, 28) and data.n_classes == 10
    assert torch.equal(data.train.x[:, 0], torch.from_numpy(x_train))
    assert torch.equal(data.test.y, torch.from_numpy(y_test.astype(np.int64)))


def test_torchvision_resize_and_rgb(tmp_path):
    write_mnist(tmp_path)
    data = task({"kind": "torchvision", "name": "MNIST", "root": str(tmp_path)}, size=32, channels=3)
    assert data.image_shape == (3, 32, 32)
    assert torch.equal(data.train.x[:, 0], data.train.x[:, 2])  # grey copied to every channel


def test_torchvision_missing_root_names_the_field(tmp_path):
    with pytest.raises(SpecError) as info:
        task({"kind": "torchvision", "name": "MNIST", "root": str(tmp_path / "nowhere")})
    assert info.value.field == "data.source.root"


def test_folder_with_train_and_test(tmp_path):
    write_image_folder(tmp_path / "train", {"cat": 4, "dog": 3})
    write_image_folder(tmp_path / "test", {"cat": 2, "dog": 2}, seed=1)
    data = task({"kind": "folder", "root": str(tmp_path)})
    assert data.classes == ("cat", "dog") and data.image_shape == (3, 12, 12)
    assert data.train.y.tolist() == [0, 0, 0, 0, 1, 1, 1] and len(data.test) == 4


def test_folder_single_tree_is_split_and_grey_stays_grey(tmp_path):
    write_image_folder(tmp_path, {"a": 10, "b": 10, "c": 10}, mode="L")
    data = task({"kind": "folder", "root": str(tmp_path), "test_fraction": 0.3})
    assert data.image_shape == (1, 12, 12)
    assert torch.bincount(data.test.y).tolist() == [3, 3, 3]
    assert torch.bincount(data.train.y).tolist() == [7, 7, 7]


def test_folder_of_mixed_sizes_needs_a_size(tmp_path):
    write_image_folder(tmp_path / "a", {"x": 2}, size=(10, 10))
    write_image_folder(tmp_path / "b", {"y": 2}, size=(14, 10))
    with pytest.raises(SpecError) as info:
        task({"kind": "folder", "root": str(tmp_path)})
    assert info.value.field == "data.size"
    assert task({"kind": "folder", "root": str(tmp_path)}, size=8).image_shape[1:] == (8, 8)


def test_unreadable_folder_and_corrupt_image(tmp_path):
    with pytest.raises(SpecError, match="not a readable folder"):
        task({"kind": "folder", "root": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="no class sub-folders"):
        task({"kind": "folder", "root": str(tmp_path / "empty")})
    write_image_folder(tmp_path / "bad", {"a": 2, "b": 2})
    (tmp_path / "bad" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SpecError, match="broken.png"):
        task({"kind": "folder", "root": str(tmp_path / "bad")})


def test_decoded_folder_is_cached_and_invalidated_by_changes(tmp_path):
    root = tmp_path / "data"
    write_image_folder(root, {"a": 3, "b": 3})
    first = task({"kind": "folder", "root": str(root)})
    cached = list((tmp_path / "var" / "cache" / "data").glob("*.safetensors"))
    assert len(cached) == 1
    again = task({"kind": "folder", "root": str(root)})
    assert again.fingerprint == first.fingerprint
    write_image_folder(root, {"a": 4, "b": 3}, seed=5)  # one more image, others rewritten
    changed = task({"kind": "folder", "root": str(root)})
    assert len(changed.train) + len(changed.test) == 7


def test_fingerprint_tracks_content():
    a = task({"kind": "digits"})
    b = task({"kind": "digits"}, shifts=[{"kind": "inversion"}])
    assert a.fingerprint != b.fingerprint and len(a.fingerprint) == 32
