"""The datasets the benchmark knows, where each is looked for, and the tensor cache.

A dataset is loaded once into uint8 tensors (N, C, H, W) plus int64 labels, in
its official order, and cached decoded under <cache>/tensors/ keyed by the
source files' identity. Lookup order for each dataset is listed in `locate`;
with a network, torchvision's classes download what is missing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from bench import atomic
from bench.data import readers
from bench.errors import DataError
from bench.registry import Registry

if TYPE_CHECKING:  # torch is imported where tensors are made: `bench list` reads this module without it
    import torch

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TENSOR_CACHE_FORMAT = 1


@dataclass(frozen=True)
class Augment:
    """Training augmentation, applied on the device in batches."""

    crop_pad: int  # random crop of the original size after zero-padding by this many pixels
    flip: bool  # random horizontal flip with probability 1/2


@dataclass(frozen=True)
class Source:
    """Data found on disk (or built in) and how to read it."""

    description: str
    files: tuple[Path, ...]
    read: Callable[[], dict[str, np.ndarray]]
    version: str = ""  # for built-in data with no files (e.g. the scikit-learn version)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    channels: int
    image_size: int
    train_size: int
    test_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: Augment
    default_model: str
    classes: tuple[str, ...]
    locate: Callable[["DatasetSpec", Path], tuple[Source | None, list[str]]] = field(repr=False)
    download: Callable[[Path], None] | None = field(default=None, repr=False)
    how_to_get: str = ""


@dataclass
class ImageData:
    """A dataset in memory: uint8 images (N, C, H, W) and int64 labels, official order."""

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str

    @property
    def fingerprint(self) -> str:
        """A hash of the pixel and label content (identifies the data in checkpoint keys)."""
        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


DATASETS: Registry[DatasetSpec] = Registry("dataset")

# --------------------------------------------------------------------------- locating sources


def _first_existing(candidates: list[tuple[Path, Callable[[Path], Source]]]) -> tuple[Source | None, list[str]]:
    tried = []
    for path, make in candidates:
        tried.append(str(path))
        if path.exists():
            return make(path), tried
    return None, tried


def _locate_digits(spec: DatasetSpec, root: Path) -> tuple[Source | None, list[str]]:
    import sklearn

    def read() -> dict[str, np.ndarray]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        # 17 grey levels (0..16) mapped onto 0..255; the first 1437 (80%) train, the last 360 test.
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
        labels = bunch.target.astype(np.int64)
        return {"train_x": images[:1437], "train_y": labels[:1437], "test_x": images[1437:], "test_y": labels[1437:]}

    return Source("scikit-learn load_digits()", (), read, version=f"sklearn-{sklearn.__version__}"), ["scikit-learn"]


def _mnist_source(folder: Path) -> Source:
    files = tuple(
        readers.find_idx(folder, stem) or folder / stem
        for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    )
    return Source(f"idx files in {folder}", files, lambda: readers.read_mnist_folder(folder))


def _locate_fashion(spec: DatasetSpec, root: Path) -> tuple[Source | None, list[str]]:
    def has_idx(folder: Path) -> bool:
        return readers.find_idx(folder, "train-images-idx3-ubyte") is not None

    candidates = [root / "FashionMNIST" / "raw", root / "fashion-mnist", DEBIAN_FASHION_MNIST]
    tried = []
    for folder in candidates:
        tried.append(str(folder))
        if has_idx(folder):
            return _mnist_source(folder), tried
    return None, tried


def _locate_cifar10(spec: DatasetSpec, root: Path) -> tuple[Source | None, list[str]]:
    sizes = {"train": spec.train_size, "test": spec.test_size}
    classes = list(spec.classes)

    def pickles(folder: Path) -> Source:
        files = tuple(sorted(folder.glob("*_batch*")))
        return Source(f"CIFAR-10 python batches in {folder}", files, lambda: readers.read_cifar10_python(folder))

    def archive(path: Path) -> Source:
        return Source(f"CIFAR-10 JPEG archive {path}", (path,), lambda: readers.read_cifar_jpeg_archive(path, classes, sizes))

    def folder(path: Path) -> Source:
        files = (path / "train", path / "test")
        return Source(f"CIFAR-10 JPEG folder {path}", files, lambda: readers.read_cifar_jpeg_folder(path, classes, sizes))

    if root.is_file():  # --data-root may name the archive itself
        return archive(root), [str(root)]
    return _first_existing(
        [
            (root / "cifar-10-batches-py", pickles),
            (root / "cifar10-jpeg.tar.xz", archive),
            (root / "cifar10-jpeg", folder),
        ]
    )


def _locate_cifar100(spec: DatasetSpec, root: Path) -> tuple[Source | None, list[str]]:
    def pickles(folder: Path) -> Source:
        files = (folder / "train", folder / "test")
        return Source(f"CIFAR-100 python files in {folder}", files, lambda: readers.read_cifar100_python(folder))

    return _first_existing([(root / "cifar-100-python", pickles)])


def _locate_svhn(spec: DatasetSpec, root: Path) -> tuple[Source | None, list[str]]:
    train, test = root / "train_32x32.mat", root / "test_32x32.mat"

    def read() -> dict[str, np.ndarray]:
        train_x, train_y = readers.read_svhn_mat(train)
        test_x, test_y = readers.read_svhn_mat(test)
        return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}

    tried = [str(train), str(test)]
    if train.is_file() and test.is_file():
        return Source(f"SVHN .mat files in {root}", (train, test), read), tried
    return None, tried


# --------------------------------------------------------------------------- downloads (torchvision)


def _download_with(cls_name: str, *, split_kwarg: bool = False) -> Callable[[Path], None]:
    """Download both splits with torchvision's dataset class `cls_name` into `root`."""

    def download(root: Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        root.mkdir(parents=True, exist_ok=True)
        splits = ({"split": "train"}, {"split": "test"}) if split_kwarg else ({"train": True}, {"train": False})
        for kwargs in splits:
            cls(str(root), download=True, **kwargs)

    return download


DATASETS.add(
    "digits",
    DatasetSpec(
        name="digits", num_classes=10, channels=1, image_size=8, train_size=1437, test_size=360,
        mean=(0.3054,), std=(0.3753,), augment=Augment(crop_pad=1, flip=False), default_model="small_cnn",
        classes=tuple(str(i) for i in range(10)), locate=_locate_digits,
        how_to_get="it ships with scikit-learn: pip install scikit-learn",
    ),
)
DATASETS.add(
    "fashion-mnist",
    DatasetSpec(
        name="fashion-mnist", num_classes=10, channels=1, image_size=28, train_size=60_000, test_size=10_000,
        mean=(0.2860,), std=(0.3530,), augment=Augment(crop_pad=2, flip=True), default_model="small_cnn",
        classes=FASHION_CLASSES, locate=_locate_fashion, download=_download_with("FashionMNIST"),
        how_to_get=(
            "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist), put the four idx files "
            "in <data-root>/fashion-mnist/, or run once with a network to download them"
        ),
    ),
)
DATASETS.add(
    "cifar10",
    DatasetSpec(
        name="cifar10", num_classes=10, channels=3, image_size=32, train_size=50_000, test_size=10_000,
        mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010), augment=Augment(crop_pad=4, flip=True),
        default_model="resnet18", classes=CIFAR10_CLASSES, locate=_locate_cifar10, download=_download_with("CIFAR10"),
        how_to_get=(
            "pass --data-root pointing at a folder holding cifar-10-batches-py/, cifar10-jpeg.tar.xz or an extracted "
            "cifar10-jpeg/ (or at the archive itself), or run once with a network to download it"
        ),
    ),
)
DATASETS.add(
    "cifar100",
    DatasetSpec(
        name="cifar100", num_classes=100, channels=3, image_size=32, train_size=50_000, test_size=10_000,
        mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), augment=Augment(crop_pad=4, flip=True),
        default_model="resnet18", classes=tuple(str(i) for i in range(100)), locate=_locate_cifar100,
        download=_download_with("CIFAR100"),
        how_to_get="pass --data-root pointing at a folder holding cifar-100-python/, or run once with a network",
    ),
)
DATASETS.add(
    "svhn",
    DatasetSpec(
        name="svhn", num_classes=10, channels=3, image_size=32, train_size=73_257, test_size=26_032,
        mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), augment=Augment(crop_pad=4, flip=False),
        default_model="resnet18", classes=tuple(str(i) for i in range(10)), locate=_locate_svhn,
        download=_download_with("SVHN", split_kwarg=True),
        how_to_get="pass --data-root pointing at a folder holding train_32x32.mat and test_32x32.mat, or run once with a network",
    ),
)

# --------------------------------------------------------------------------- loading and caching

def _source_key(spec: DatasetSpec, source: Source) -> str:
    ident = {"dataset": spec.name, "format": TENSOR_CACHE_FORMAT, "version": source.version, "files": []}
    for path in source.files:
        st = path.stat()
        ident["files"].append([str(path.resolve()), st.st_size, st.st_mtime_ns])
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _validate(spec: DatasetSpec, arrays: dict[str, np.ndarray], where: str) -> None:
    expected = {"train": spec.train_size, "test": spec.test_size}
    for split, n in expected.items():
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        shape = (n, spec.channels, spec.image_size, spec.image_size)
        if tuple(x.shape) != shape:
            raise DataError(f"{where}: {split} images have shape {tuple(x.shape)}, expected {shape}")
        if tuple(y.shape) != (n,):
            raise DataError(f"{where}: {split} labels have shape {tuple(y.shape)}, expected ({n},)")
        if int(y.min()) < 0 or int(y.max()) >= spec.num_classes:
            raise DataError(f"{where}: {split} labels outside 0..{spec.num_classes - 1}")


def _read_cached(path: Path) -> dict[str, torch.Tensor] | None:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != TENSOR_CACHE_FORMAT:
            return None
        return {k: payload[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    except Exception:  # a corrupt cache entry is rebuilt from the source
        return None


def load_dataset(
    name: str,
    root: Path,
    *,
    cache: Path | None,
    download: bool = True,
    sizes: dict[str, int] | None = None,
) -> ImageData:
    """The dataset `name` as uint8 tensors, from the tensor cache or its source.

    `sizes` overrides the expected split sizes (tests use small files of the real format).
    Each call reads; a worker decodes a dataset once through its `WorkerCache.dataset`.
    """
    spec = DATASETS.get(name)
    if sizes:
        spec = _with_sizes(spec, sizes)
    source, tried = spec.locate(spec, root)
    if source is None and download and spec.download is not None:
        try:
            spec.download(root)
        except Exception as exc:  # no network, a server error, a full disk: one line, what to do
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{name}: not found (tried {', '.join(tried)}) and the download failed ({reason}); {spec.how_to_get}"
            ) from None
        source, tried = spec.locate(spec, root)
    if source is None:
        raise DataError(f"{name}: not found (tried {', '.join(tried)}); {spec.how_to_get}")

    tensors = None
    cache_file = None
    if cache is not None:
        cache_file = cache / "tensors" / f"{spec.name}-{_source_key(spec, source)}.pt"
        if cache_file.is_file():
            tensors = _read_cached(cache_file)
    if tensors is None:
        import torch

        arrays = source.read()
        _validate(spec, arrays, source.description)
        tensors = {k: torch.from_numpy(np.require(v, requirements=["C", "W"])) for k, v in arrays.items()}
        if cache_file is not None:
            atomic.torch_save({"format": TENSOR_CACHE_FORMAT, **tensors}, cache_file)
    else:
        _validate(spec, {k: v.numpy() for k, v in tensors.items()}, str(cache_file))
    return ImageData(spec=spec, source=source.description, **tensors)


def _with_sizes(spec: DatasetSpec, sizes: dict[str, int]) -> DatasetSpec:
    from dataclasses import replace

    return replace(spec, train_size=sizes["train"], test_size=sizes["test"])
