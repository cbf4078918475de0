"""Tiny CLIP and tiny MERU: the same image tower (ResNet-18, CIFAR stem) and text tower
(a small causal transformer over words); they differ only in the embedding geometry.

CLIP: unit vectors, logits `scale * <img, txt>`. MERU: tangent vectors scaled by a learned
alpha, mapped onto the hyperboloid by expmap0 with a learnable curvature c (clamped to
[0.1, 10]); logits `-scale * d(img, txt)`; plus the entailment loss (weight 0.2) that keeps
each image inside its caption's cone. Logit scale clamped to <= 100; geometry in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.tasks.imagetext import lorentz

GEOMETRIES = ("clip", "meru")
CURVATURE_RANGE = (0.1, 10.0)
MAX_SCALE = 100.0


# --------------------------------------------------------------------------- image tower


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ImageTower(nn.Module):
    """ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool), base width `width`
    (64: the standard ResNet-18), pooled, then a linear projection to `embed_dim`."""

    def __init__(self, width: int, embed_dim: int, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
        for i, mult in enumerate((1, 2, 4, 8)):
            cout = width * mult
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


# --------------------------------------------------------------------------- text tower


class CausalSelfAttention(nn.Module):
    """Explicit matmuls (not a fused kernel) so fvcore counts the attention's FLOPs."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(n, length, width)
        return self.out(y)


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class TextTower(nn.Module):
    """Word embeddings + learned positions, `layers` pre-LN causal blocks, the feature at
    the <eos> token, a linear projection to `embed_dim`."""

    def __init__(self, vocab_size: int, seq_len: int, width: int, layers: int, heads: int, embed_dim: int, eos_id: int):
        super().__init__()
        self.eos_id = eos_id
        self.tokens = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(torch.randn(seq_len, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)
        self.register_buffer("causal", torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.tokens(tokens) + self.positions[:length]
        mask = self.causal[:length, :length]
        for block in self.blocks:
            x = block(x, mask)
        eos = (tokens == self.eos_id).int().argmax(1)  # every caption has exactly one <eos>
        return self.proj(self.ln(x)[torch.arange(tokens.shape[0], device=tokens.device), eos])


# --------------------------------------------------------------------------- the two models


def multi_positive_targets(ids: torch.Tensor) -> torch.Tensor:
    """Row-normalised targets: sample i's positives are every j with the same caption id
    (duplicate captions in a batch are not negatives)."""
    same = (ids[:, None] == ids[None, :]).float()
    return same / same.sum(1, keepdim=True)


def contrastive_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (image->text and text->image) with multi-positive targets."""
    targets = multi_positive_targets(ids)
    i2t = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    t2i = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return 0.5 * (i2t + t2i)


class ImageTextModel(nn.Module):
    """A dual encoder. `geometry` is "clip" or "meru"; both share every tower."""

    def __init__(self, geometry: str, *, vocab_size: int, seq_len: int, eos_id: int, image_width: int = 64,
                 text_width: int = 256, text_layers: int = 4, text_heads: int = 4, embed_dim: int = 128,
                 entail_weight: float = 0.2, init_curvature: float = 1.0, init_temperature: float = 0.07):
        super().__init__()
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}")
        self.geometry = geometry
        self.entail_weight = entail_weight
        self.image_tower = ImageTower(image_width, embed_dim)
        self.text_tower = TextTower(vocab_size, seq_len, text_width, text_layers, text_heads, embed_dim, eos_id)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        if geometry == "meru":
            self.log_curvature = nn.Parameter(torch.tensor(math.log(init_curvature)))
            self.image_alpha = nn.Parameter(torch.tensor(math.log(embed_dim**-0.5)))
            self.text_alpha = nn.Parameter(torch.tensor(math.log(embed_dim**-0.5)))

    @property
    def hyperbolic(self) -> bool:
        return self.geometry == "meru"

    def scale(self) -> torch.Tensor:
        return self.log_scale.exp()

    def curvature(self) -> torch.Tensor:
        return self.log_curvature.exp()

    @torch.no_grad()
    def clamp_scalars_(self) -> None:
        """Keep the learnable scalars in their bounds, on the parameters themselves (MERU clamps
        their `.data` before each forward; the optimiser calls this after each step): logit
        scale <= 100, curvature in [0.1, 10], the alphas <= 1 (they never scale features up).
        A clamp inside the forward instead would pass no gradient at or past a bound, where
        Adam's momentum can carry a parameter, and the parameter would never come back."""
        self.log_scale.clamp_(max=math.log(MAX_SCALE))
        if self.hyperbolic:
            low, high = CURVATURE_RANGE
            self.log_curvature.clamp_(math.log(low), math.log(high))
            self.image_alpha.clamp_(max=0.0)
            self.text_alpha.clamp_(max=0.0)

    def geometry_parameters(self) -> list[nn.Parameter]:
        """Curvature and logit scale: frozen while unlearning."""
        return [self.log_scale] + ([self.log_curvature] if self.hyperbolic else [])

    # ---- embeddings (float32)

    def embed(self, features: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        """Tower features -> embedding: unit vector (CLIP) or hyperboloid space components (MERU)."""
        features = features.float()
        if not self.hyperbolic:
            return F.normalize(features, dim=-1)
        return lorentz.expmap0(features * alpha.exp(), self.curvature())

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.image_tower(x), getattr(self, "image_alpha", None))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(self.text_tower(tokens), getattr(self, "text_alpha", None))

    def encode_prompts(self, tokens: torch.Tensor) -> torch.Tensor:
        """(K, T, L) prompt tokens -> one embedding per class: the mean over templates of the
        unit vectors (CLIP, renormalised) or of the tangent features before expmap0 (MERU)."""
        k, t, length = tokens.shape
        feats = self.text_tower(tokens.reshape(k * t, length)).float().view(k, t, -1)
        if not self.hyperbolic:
            return F.normalize(F.normalize(feats, dim=-1).mean(1), dim=-1)
        return self.embed(feats.mean(1), self.text_alpha)

    # ---- similarities and losses

    def logits(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """(N, M) logits between image and text embeddings."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            if not self.hyperbolic:
                return self.scale() * images.float() @ texts.float().T
            return -self.scale() * lorentz.pairwise_dist(images, texts, self.curvature())

    def entailment_loss(self, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """MERU: mean of max(0, exterior angle at the text of the image - the text's half-aperture)."""
        c = self.curvature()
        return torch.relu(lorentz.exterior_angle(texts, images, c) - lorentz.half_aperture(texts, c)).mean()

    def loss(self, images: torch.Tensor, texts: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The model's own training loss on paired embeddings (caption ids for duplicates)."""
        loss = contrastive_loss(self.logits(images, texts), ids)
        if self.hyperbolic and self.entail_weight > 0:
            loss = loss + self.entail_weight * self.entailment_loss(images, texts)
        return loss
