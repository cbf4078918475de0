"""Readers for the on-disk formats the datasets come in.

Each returns uint8 images as (N, C, H, W) numpy arrays and int64 labels, in the
dataset's official order, so that index i means the same image everywhere.
Every reader raises `DataError` with a one-line reason for a malformed file.
"""

from __future__ import annotations

import gzip
import io
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np

from bench.errors import DataError

# --------------------------------------------------------------------------- idx (MNIST family)

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST / Fashion-MNIST format), plain or gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an unsigned-byte idx file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(dims)) if dims else 0
    if len(raw) != header + count:
        raise DataError(f"{path}: expected {count} values for shape {dims}, file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_mnist_folder(folder: Path) -> dict[str, np.ndarray]:
    """train/test images and labels from the four idx files in `folder`."""
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = find_idx(folder, f"{prefix}-images-idx3-ubyte")
        lab = find_idx(folder, f"{prefix}-labels-idx1-ubyte")
        if img is None or lab is None:
            raise DataError(f"{folder} lacks the {prefix}-*-idx?-ubyte files")
        x, y = read_idx(img), read_idx(lab)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{folder}: {prefix} images {x.shape} and labels {y.shape} do not match")
        parts[f"{split}_x"] = x[:, None, :, :]
        parts[f"{split}_y"] = y.astype(np.int64)
    return parts


# --------------------------------------------------------------------------- CIFAR pickles


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _cifar_batches(files: list[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for path in files:
        entry = _unpickle(path)
        if b"data" not in entry or label_key not in entry:
            raise DataError(f"{path} is not a CIFAR python batch (no data/{label_key.decode()})")
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def read_cifar10_python(folder: Path) -> dict[str, np.ndarray]:
    """torchvision's / the official `cifar-10-batches-py` folder."""
    train = [folder / f"data_batch_{i}" for i in range(1, 6)]
    test = [folder / "test_batch"]
    missing = [p.name for p in train + test if not p.is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}")
    train_x, train_y = _cifar_batches(train, b"labels")
    test_x, test_y = _cifar_batches(test, b"labels")
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def read_cifar100_python(folder: Path) -> dict[str, np.ndarray]:
    """torchvision's / the official `cifar-100-python` folder (fine labels)."""
    missing = [n for n in ("train", "test") if not (folder / n).is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}")
    train_x, train_y = _cifar_batches([folder / "train"], b"fine_labels")
    test_x, test_y = _cifar_batches([folder / "test"], b"fine_labels")
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


# --------------------------------------------------------------------------- CIFAR-10 as JPEGs

_JPEG_MEMBER = re.compile(r"^(?:\./)?(train|test)/([a-z_]+)/(\d+)\.jpe?g$")


def _decode_jpeg(payload: bytes, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(payload)) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot decode {where}: {exc}") from None
    if arr.shape != (32, 32, 3):
        raise DataError(f"{where} is {arr.shape[1]}x{arr.shape[0]}, expected 32x32 RGB")
    return arr.transpose(2, 0, 1)


class _JpegCollector:
    """Places decoded images at their official index and checks completeness."""

    def __init__(self, classes: list[str], sizes: dict[str, int], source: Path):
        self.class_id = {c: i for i, c in enumerate(classes)}
        self.sizes = sizes
        self.source = source
        self.x = {s: np.zeros((n, 3, 32, 32), np.uint8) for s, n in sizes.items()}
        self.y = {s: np.full(n, -1, np.int64) for s, n in sizes.items()}

    def add(self, split: str, cls: str, index: int, payload: bytes, where: str) -> None:
        if cls not in self.class_id:
            raise DataError(f"{where}: unknown class folder {cls!r}")
        if index >= self.sizes[split]:
            raise DataError(f"{where}: index {index} outside the {split} set of {self.sizes[split]}")
        if self.y[split][index] != -1:
            raise DataError(f"{where}: index {index} appears twice in {split}")
        self.x[split][index] = _decode_jpeg(payload, where)
        self.y[split][index] = self.class_id[cls]

    def result(self) -> dict[str, np.ndarray]:
        for split, labels in self.y.items():
            missing = int((labels < 0).sum())
            if missing:
                raise DataError(f"{self.source}: {missing} of {len(labels)} {split} images are missing")
        return {"train_x": self.x["train"], "train_y": self.y["train"], "test_x": self.x["test"], "test_y": self.y["test"]}


def read_cifar_jpeg_archive(path: Path, classes: list[str], sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """`cifar10-jpeg.tar.xz`: train/<class>/<index>.jpg and test/<class>/<index>.jpg."""
    collector = _JpegCollector(classes, sizes, path)
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                match = _JPEG_MEMBER.match(member.name)
                if not member.isfile() or match is None:
                    continue
                split, cls, index = match.group(1), match.group(2), int(match.group(3))
                payload = tar.extractfile(member).read()
                collector.add(split, cls, index, payload, f"{path.name}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {exc}") from None
    return collector.result()


def read_cifar_jpeg_folder(folder: Path, classes: list[str], sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """The same layout, extracted: <folder>/train/<class>/<index>.jpg, <folder>/test/..."""
    collector = _JpegCollector(classes, sizes, folder)
    for split in sizes:
        for path in sorted((folder / split).glob("*/*.jp*g")):
            match = _JPEG_MEMBER.match(f"{split}/{path.parent.name}/{path.name}")
            if match is None:
                continue
            collector.add(split, match.group(2), int(match.group(3)), path.read_bytes(), str(path))
    return collector.result()


# --------------------------------------------------------------------------- SVHN (.mat)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's SVHN file: X (32, 32, 3, N) uint8, y (N, 1) with 10 meaning digit 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path} is not an SVHN .mat file (no X/y)")
    x = np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1)
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1) % 10
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} images but {len(y)} labels")
    return np.ascontiguousarray(x), y
