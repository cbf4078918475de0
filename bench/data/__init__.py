"""Datasets: on-disk readers, the catalog of known datasets, and device-resident views."""

from bench.data.catalog import DATASETS, Augment, DatasetSpec, ImageData, load_dataset

__all__ = ["DATASETS", "Augment", "DatasetSpec", "DeviceData", "ImageData", "load_dataset"]


def __getattr__(name: str):
    if name == "DeviceData":  # imports torch: only when asked for (the catalog itself does not need it)
        from bench.data.device_data import DeviceData

        return DeviceData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
