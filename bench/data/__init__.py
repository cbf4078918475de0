"""Datasets: on-disk readers, the catalog of known datasets, and device-resident views."""

from bench.data.catalog import DATASETS, Augment, DatasetSpec, ImageData, load_dataset
from bench.data.device_data import DeviceData

__all__ = ["DATASETS", "Augment", "DatasetSpec", "DeviceData", "ImageData", "load_dataset"]
