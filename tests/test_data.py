"""Dataset readers and the catalog, on small files written here in each dataset's real format."""

from __future__ import annotations

import dataclasses
import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from bench.data import catalog
from bench.data.catalog import CIFAR10_CLASSES, DATASETS, load_dataset
from bench.errors import DataError

# --------------------------------------------------------------------------- writers (the formats)


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist_folder(folder, n_train: int, n_test: int, gz: bool, seed: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, gz)
        arrays[prefix] = (x, y)
    return arrays


def cifar_arrays(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def write_cifar10_python(folder, per_batch: int, n_test: int):
    folder.mkdir(parents=True)
    train = []
    for i in range(1, 6):
        data, labels = cifar_arrays(per_batch, seed=i)
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
        train.append((data, labels))
    data, labels = cifar_arrays(n_test, seed=99)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
    return train, (data, labels)


def jpeg_bytes(value: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def cifar_jpeg_members(n_train: int, n_test: int):
    """(name, bytes) for train/<class>/<i>.jpg: image i is a flat grey of level 10*i+5, class i % 10."""
    members = []
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            cls = CIFAR10_CLASSES[(3 * i + 1) % 10]
            members.append((f"{split}/{cls}/{i:05d}.jpg", jpeg_bytes(min(255, 10 * i + 5))))
    return members


def write_tar_xz(path, members):
    with tarfile.open(path, "w:xz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_idx_files(tmp_path, gz):
    arrays = write_mnist_folder(tmp_path / "fashion-mnist", 20, 10, gz)
    data = load_dataset("fashion-mnist", tmp_path, cache=None, download=False, sizes={"train": 20, "test": 10})
    assert data.train_x.shape == (20, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train"][0])
    assert np.array_equal(data.test_y.numpy(), arrays["t10k"][1])


def test_fashion_mnist_in_torchvisions_layout(tmp_path):
    write_mnist_folder(tmp_path / "FashionMNIST" / "raw", 12, 6, gz=False)
    data = load_dataset("fashion-mnist", tmp_path, cache=None, download=False, sizes={"train": 12, "test": 6})
    assert "FashionMNIST" in data.source


def test_truncated_idx_is_a_data_error(tmp_path):
    folder = tmp_path / "fashion-mnist"
    write_mnist_folder(folder, 12, 6, gz=False)
    raw = (folder / "train-images-idx3-ubyte").read_bytes()
    (folder / "train-images-idx3-ubyte").write_bytes(raw[:-5])
    with pytest.raises(DataError, match="expected"):
        load_dataset("fashion-mnist", tmp_path, cache=None, download=False, sizes={"train": 12, "test": 6})


def test_cifar10_python_batches_in_official_order(tmp_path):
    train, test = write_cifar10_python(tmp_path / "cifar-10-batches-py", per_batch=4, n_test=5)
    data = load_dataset("cifar10", tmp_path, cache=None, download=False, sizes={"train": 20, "test": 5})
    expected = np.concatenate([d for d, _ in train]).reshape(-1, 3, 32, 32)
    assert np.array_equal(data.train_x.numpy(), expected)
    assert data.train_y.tolist() == sum((labels for _, labels in train), [])
    assert data.test_y.tolist() == test[1]


def test_cifar100_python_files(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        data, _ = cifar_arrays(n, seed=n)
        fine = list(range(90, 90 + n))
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"fine_labels": fine, b"coarse_labels": [0] * n}))
    data = load_dataset("cifar100", tmp_path, cache=None, download=False, sizes={"train": 6, "test": 3})
    assert data.train_y.tolist() == list(range(90, 96))


def test_svhn_mat_files(tmp_path):
    import scipy.io

    for name, n in (("train_32x32.mat", 5), ("test_32x32.mat", 3)):
        x = np.random.default_rng(n).integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [2], [3], [4]][:n], dtype=np.uint8)
        scipy.io.savemat(tmp_path / name, {"X": x, "y": y})
    data = load_dataset("svhn", tmp_path, cache=None, download=False, sizes={"train": 5, "test": 3})
    assert data.train_y.tolist() == [0, 1, 2, 3, 4]  # SVHN's label 10 is the digit 0
    assert data.train_x.shape == (5, 3, 32, 32)


def _check_jpeg_layout(data, n_train, n_test):
    for split, n, x, y in (("train", n_train, data.train_x, data.train_y), ("test", n_test, data.test_x, data.test_y)):
        levels = x.float().mean(dim=(1, 2, 3))
        expected = torch.tensor([min(255, 10 * i + 5) for i in range(n)], dtype=torch.float32)
        assert torch.allclose(levels, expected, atol=3.0), split  # JPEG is lossy; flat greys survive
        assert y.tolist() == [(3 * i + 1) % 10 for i in range(n)]


def test_cifar10_jpeg_archive_places_images_at_their_index(tmp_path):
    members = cifar_jpeg_members(12, 4)
    members.reverse()  # the archive's order must not matter, only the file names
    write_tar_xz(tmp_path / "cifar10-jpeg.tar.xz", members)
    data = load_dataset("cifar10", tmp_path, cache=None, download=False, sizes={"train": 12, "test": 4})
    _check_jpeg_layout(data, 12, 4)


def test_cifar10_jpeg_archive_given_as_the_data_root(tmp_path):
    write_tar_xz(tmp_path / "anything.tar.xz", cifar_jpeg_members(12, 4))
    data = load_dataset("cifar10", tmp_path / "anything.tar.xz", cache=None, download=False, sizes={"train": 12, "test": 4})
    _check_jpeg_layout(data, 12, 4)


def test_cifar10_jpeg_extracted_folder(tmp_path):
    for name, payload in cifar_jpeg_members(12, 4):
        path = tmp_path / "cifar10-jpeg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    data = load_dataset("cifar10", tmp_path, cache=None, download=False, sizes={"train": 12, "test": 4})
    _check_jpeg_layout(data, 12, 4)


def test_cifar10_jpeg_archive_with_a_missing_image_is_a_data_error(tmp_path):
    members = [m for m in cifar_jpeg_members(12, 4) if m[0] != "train/" + CIFAR10_CLASSES[(3 * 7 + 1) % 10] + "/00007.jpg"]
    write_tar_xz(tmp_path / "cifar10-jpeg.tar.xz", members)
    with pytest.raises(DataError, match="1 of 12 train images are missing"):
        load_dataset("cifar10", tmp_path, cache=None, download=False, sizes={"train": 12, "test": 4})


def test_tensor_cache_is_used_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    write_mnist_folder(tmp_path / "data" / "fashion-mnist", 12, 6, gz=True)
    sizes = {"train": 12, "test": 6}
    first = load_dataset("fashion-mnist", tmp_path / "data", cache=tmp_path / "cache", download=False, sizes=sizes)
    (cached,) = (tmp_path / "cache" / "tensors").glob("fashion-mnist-*.pt")

    def no_reading(folder):
        raise AssertionError("the source was read although the cache holds it")

    monkeypatch.setattr(catalog.readers, "read_mnist_folder", no_reading)
    again = load_dataset("fashion-mnist", tmp_path / "data", cache=tmp_path / "cache", download=False, sizes=sizes)
    assert torch.equal(first.train_x, again.train_x)

    monkeypatch.undo()
    cached.write_bytes(b"not a torch file")
    rebuilt = load_dataset("fashion-mnist", tmp_path / "data", cache=tmp_path / "cache", download=False, sizes=sizes)
    assert torch.equal(first.train_x, rebuilt.train_x)


def test_missing_data_names_the_paths_tried_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist", tmp_path, cache=None, download=False)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "fashion-mnist") in message and "apt-get install dataset-fashion-mnist" in message


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(root):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>\nmore detail")

    spec = DATASETS.get("cifar10")
    monkeypatch.setitem(DATASETS._entries, "cifar10", dataclasses.replace(spec, download=offline))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path, cache=None, download=True)
    assert "download failed" in str(err.value) and "\n" not in str(err.value)


def test_download_uses_torchvisions_dataset_classes(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class Recorder:
        def __init__(self, root, download=False, **kwargs):
            calls.append((root, download, kwargs))

    monkeypatch.setattr(tvd, "CIFAR10", Recorder)
    DATASETS.get("cifar10").download(tmp_path)
    assert calls == [(str(tmp_path), True, {"train": True}), (str(tmp_path), True, {"train": False})]


def test_digits_is_always_available_and_split_80_20():
    data = load_dataset("digits", catalog.Path("/nonexistent"), cache=None, download=False)
    assert data.train_x.shape == (1437, 1, 8, 8) and data.test_x.shape == (360, 1, 8, 8)
    assert int(data.train_x.max()) == 255 and int(data.train_x.min()) == 0
