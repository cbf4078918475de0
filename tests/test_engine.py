"""Batched augmentation, batching, and the supervised training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.augment import Normalizer, crop_flip
from bench.data.catalog import Augment
from bench.data.device_data import DeviceData
from bench.engine import Engine, TrainRecipe
from bench.models import build_model


def _images(n=16, c=3, size=6, seed=0):
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_every_crop_is_a_window_of_the_padded_image_possibly_flipped():
    images, pad = _images(), 2
    out = crop_flip(images, pad, flip=True, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (pad,) * 4)
    size = images.shape[-1]
    flipped_any = shifted_any = False
    for i in range(len(images)):
        windows = {
            (dy, dx, flip): padded[i, :, dy : dy + size, dx : dx + size].flip(-1) if flip else padded[i, :, dy : dy + size, dx : dx + size]
            for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for flip in (False, True)
        }
        matches = [k for k, w in windows.items() if torch.equal(w, out[i])]
        assert matches, f"sample {i} is not a crop of its padded image"
        flipped_any |= any(k[2] for k in matches)
        shifted_any |= any(k[:2] != (pad, pad) for k in matches)
    assert flipped_any and shifted_any  # the randomness is really used


def test_no_pad_no_flip_is_identity_and_a_seed_fixes_the_draw():
    images = _images()
    assert torch.equal(crop_flip(images, 0, False, torch.Generator().manual_seed(0)), images)
    a = crop_flip(images, 3, True, torch.Generator().manual_seed(5))
    b = crop_flip(images, 3, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_normalizer_matches_the_formula():
    images = _images(c=3)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(Normalizer(mean, std, torch.device("cpu"))(images), expected, atol=1e-5)


def _data(n=50):
    g = torch.Generator().manual_seed(0)
    return DeviceData(torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (n,), generator=g), torch.arange(100, 100 + n), "toy")


def test_an_epoch_visits_every_sample_once():
    engine = Engine("cpu", (0.5,), (0.25,), Augment(1, False))
    data = _data(50)
    seen = torch.cat([b.pos for b in engine.batches(data, 16, engine.generator(0))])
    assert sorted(seen.tolist()) == list(range(50))
    dropped = list(engine.batches(data, 16, engine.generator(0), drop_last=True))
    assert [len(b) for b in dropped] == [16, 16, 16]


def test_a_sampled_batch_has_distinct_samples():
    engine = Engine("cpu", (0.5,), (0.25,), Augment(1, False))
    batch = engine.sample(_data(50), 20, engine.generator(3))
    assert len(set(batch.pos.tolist())) == 20


def test_training_learns_real_digits_and_is_deterministic():
    from bench.data.catalog import load_dataset
    from pathlib import Path

    digits = load_dataset("digits", Path("/nonexistent"), cache=None, download=False)
    engine = Engine("cpu", digits.spec.mean, digits.spec.std, digits.spec.augment)
    train = DeviceData(digits.train_x, digits.train_y, torch.arange(1437), "train")
    test = DeviceData(digits.test_x, digits.test_y, torch.arange(360), "test")
    recipe = TrainRecipe(epochs=3, batch_size=128, lr=0.05)
    models = []
    for _ in range(2):
        model = build_model("small_cnn", 1, 10, 8, seed=0)
        engine.train_supervised(model, train, recipe, seed=11)
        models.append(model)
    assert engine.accuracy(models[0], test) > 80.0  # chance is 10%
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)


def test_the_epoch_loop_reports_the_last_mean_loss_and_names_the_epoch_that_diverged():
    import pytest

    from bench.errors import CellFailure

    engine = Engine("cpu", (0.5,), (0.5,), Augment(crop_pad=0, flip=False))
    losses = iter([[1.0, 3.0], [2.0, 6.0]])
    stats = engine.train_epochs(2, lambda: (torch.tensor(v) for v in next(losses)), desc="pretrain")
    assert stats["final_loss"] == 4.0 and stats["device"] == engine.device_name() and stats["seconds"] >= 0

    losses = iter([[1.0], [float("nan"), 1.0], [1.0]])
    with pytest.raises(CellFailure, match=r"^pretrain diverged: mean loss is nan at epoch 2$"):
        engine.train_epochs(3, lambda: (torch.tensor(v) for v in next(losses)), desc="pretrain")
