"""The checkpoint cache: reuse, and never silently use a bad file."""

from __future__ import annotations

import logging

import torch

from bench.checkpoints import CheckpointStore
from bench.models import build_model

KEY = {"kind": "original", "seed": 0, "recipe": {"epochs": 3}}


def _state():
    return {k: v.clone() for k, v in build_model("small_cnn", 1, 10, 8, seed=0).state_dict().items()}


def test_roundtrip_keeps_weights_and_meta(tmp_path):
    store = CheckpointStore(tmp_path)
    state = _state()
    path = store.save("original", KEY, state, {"seconds": 1.5, "samples": {"forward": 3}})
    loaded, meta = store.load("original", KEY)
    assert meta == {"seconds": 1.5, "samples": {"forward": 3}}
    assert all(torch.equal(state[k], loaded[k]) for k in state)
    torch.load(path, weights_only=True)  # loadable without unpickling code


def _assert_rejected(store, key, caplog, words):
    with caplog.at_level(logging.WARNING):
        assert store.load("original", key) is None
    assert any(words in r.getMessage() for r in caplog.records)


def test_truncated_file_is_rejected(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    path = store.save("original", KEY, _state(), {})
    path.write_bytes(path.read_bytes()[:1000])
    _assert_rejected(store, KEY, caplog, "does not load")


def test_file_made_for_another_configuration_is_rejected(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    other = {**KEY, "seed": 1}
    store.save("original", other, _state(), {})
    store.path("original", other).rename(store.path("original", KEY))  # e.g. a copied or renamed file
    _assert_rejected(store, KEY, caplog, "different configuration")


def test_tampered_weights_are_rejected(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    path = store.save("original", KEY, _state(), {})
    payload = torch.load(path, weights_only=True)
    first = next(iter(payload["state_dict"]))
    payload["state_dict"][first] = payload["state_dict"][first] + 1.0
    torch.save(payload, path)
    _assert_rejected(store, KEY, caplog, "checksum")


def test_reference_models_retrain_over_a_corrupt_checkpoint(tiny_spec, tmp_path):
    from dataclasses import replace

    from bench.cell import prepare_cell
    spec = replace(tiny_spec("Original"), cache_dir=str(tmp_path), seed=5)
    first = prepare_cell(spec)
    (path,) = (tmp_path / "checkpoints").glob("original-*.pt")
    path.write_bytes(b"garbage")
    again = prepare_cell(spec)  # a fresh WorkerCache (nothing in memory): trains again rather than failing or using garbage
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))
    assert torch.load(path, weights_only=True)["format"] == 1


def test_a_cpu_checkpoint_trained_with_other_threads_is_not_reused(tmp_path):
    """The thread count changes CPU reduction order, hence the weights: a checkpoint trained at
    2 threads must not stand in for one at 1 thread (a cached Original of another thread count
    once changed every record of a quick-profile run)."""
    from pathlib import Path

    from bench.data.catalog import load_dataset
    from bench.engine import Engine, TrainRecipe
    from bench.reference import ReferenceModels

    digits = load_dataset("digits", Path("/nonexistent"), cache=None, download=False)
    store = CheckpointStore(tmp_path)
    before = torch.get_num_threads()
    trained = []
    try:
        for threads in (2, 1, 2):
            torch.set_num_threads(threads)
            engine = Engine("cpu", digits.spec.mean, digits.spec.std, digits.spec.augment)
            refs = ReferenceModels(engine, digits, "small_cnn", TrainRecipe(epochs=1, batch_size=256, lr=0.05), store)
            trained.append(refs.original(0)[1]["trained_now"])
    finally:
        torch.set_num_threads(before)
    assert trained == [True, True, False]  # the third finds the first's checkpoint
