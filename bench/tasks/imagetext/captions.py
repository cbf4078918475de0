"""Captions for CIFAR-10 images: class templates (a training set and a held-out set),
generic hierarchy captions, a word vocabulary and token tables kept on the device.

Every caption is a row of a token table; its row number is the caption's identity, so two
samples of a batch with the same caption have the same id (multi-positive targets).
Held-out templates use only words of the training captions, so evaluation never meets
an untrained token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TRAIN_TEMPLATES = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
    "a close-up photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a cropped photo of a {}.",
    "a good photo of the {}.",
    "a pixelated photo of the {}.",
    "a jpeg photo of a {}.",
)
HELDOUT_TEMPLATES = (  # unseen as sentences during training; every word is seen
    "a good photo of the small {}.",
    "a dark close-up photo of the {}.",
    "a blurry low resolution photo of the big {}.",
    "a bright cropped photo of a {}.",
)
ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")
VEHICLES = ("airplane", "automobile", "ship", "truck")
PETS = ("cat", "dog")
GENERIC = {  # generic caption -> the CIFAR-10 class names it describes (the hierarchy)
    "a photo of an animal.": ANIMALS,
    "a photo of a vehicle.": VEHICLES,
    "a photo of a pet.": PETS,
}
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"


def words(text: str) -> list[str]:
    return text.replace(".", " .").replace("-", " - ").split()


@dataclass
class CaptionBank:
    """Token tables for one class list (on one device).

    `train_tokens[k, t]`: class k with training template t; `heldout_tokens[k, t]` likewise;
    `generic_tokens[g]`; `generic_of_class[k]`: the generic captions describing class k (as a
    padded index table with `generic_count[k]` valid entries). Caption ids: class k template
    t is `k * T + t`; generic g is `K * T + g`.
    """

    vocab: list[str]
    classes: tuple[str, ...]
    train_tokens: torch.Tensor  # (K, T, L) int64
    heldout_tokens: torch.Tensor  # (K, H, L)
    generic_tokens: torch.Tensor  # (G, L)
    generic_of_class: torch.Tensor  # (K, Gmax) int64
    generic_count: torch.Tensor  # (K,) int64
    seq_len: int

    @property
    def num_train_templates(self) -> int:
        return self.train_tokens.shape[1]

    def to(self, device: torch.device) -> "CaptionBank":
        move = {k: getattr(self, k).to(device) for k in
                ("train_tokens", "heldout_tokens", "generic_tokens", "generic_of_class", "generic_count")}
        return CaptionBank(self.vocab, self.classes, seq_len=self.seq_len, **move)

    def sample(self, labels: torch.Tensor, generator: torch.Generator,
               generic_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """A random training caption per label: (tokens (N, L), caption ids (N,)). With
        probability `generic_fraction` a generic caption of the class (where it has one)."""
        n, dev = labels.shape[0], labels.device
        k_templates = self.num_train_templates
        t = torch.randint(0, k_templates, (n,), device=dev, generator=generator)
        tokens = self.train_tokens[labels, t]
        ids = labels * k_templates + t
        if generic_fraction > 0 and self.generic_tokens.shape[0]:
            counts = self.generic_count[labels]
            pick = (torch.rand(n, device=dev, generator=generator) * counts.clamp(min=1)).long()
            g = self.generic_of_class[labels, pick.clamp(max=self.generic_of_class.shape[1] - 1)]
            use = (torch.rand(n, device=dev, generator=generator) < generic_fraction) & (counts > 0)
            tokens = torch.where(use[:, None], self.generic_tokens[g], tokens)
            ids = torch.where(use, len(self.classes) * k_templates + g, ids)
        return tokens, ids


def _encode(text: str, index: dict[str, int], seq_len: int) -> list[int]:
    ids = [index[BOS]] + [index.get(w, index[UNK]) for w in words(text)] + [index[EOS]]
    if len(ids) > seq_len:
        raise ValueError(f"caption {text!r} has {len(ids)} tokens, more than {seq_len}")
    return ids + [index[PAD]] * (seq_len - len(ids))


def build_bank(classes: tuple[str, ...], seq_len: int = 16) -> CaptionBank:
    """The caption tables for `classes`. The vocabulary (the same for every model, so Original
    and Retrain share one architecture) is every word of the training captions; a model
    trained without a class never sees its name's token, whose embedding then gets no
    gradient (weight decay still shrinks it)."""
    corpus = [t.format(c) for c in classes for t in TRAIN_TEMPLATES] + list(GENERIC)
    vocab = [PAD, UNK, BOS, EOS] + sorted({w for text in corpus for w in words(text)})
    index = {w: i for i, w in enumerate(vocab)}
    train = torch.tensor([[_encode(t.format(c), index, seq_len) for t in TRAIN_TEMPLATES] for c in classes])
    heldout = torch.tensor([[_encode(t.format(c), index, seq_len) for t in HELDOUT_TEMPLATES] for c in classes])
    generic_texts = list(GENERIC)
    generic = torch.tensor([_encode(g, index, seq_len) for g in generic_texts])
    members = [[g for g, text in enumerate(generic_texts) if c in GENERIC[text]] for c in classes]
    width = max(1, max(len(m) for m in members))
    of_class = torch.tensor([m + [0] * (width - len(m)) for m in members])
    count = torch.tensor([len(m) for m in members])
    return CaptionBank(vocab, tuple(classes), train, heldout, generic, of_class, count, seq_len)

