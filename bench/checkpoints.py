"""A cache of trained models keyed by a hash of everything that determines them.

A checkpoint file holds the key it was made for, the weights, a checksum of the
weights and the training's measured cost and time. It is loaded with
`weights_only=True`; a file that does not load, was made for another key, or
whose weights do not match their checksum is reported in one line and
retrained, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from bench import atomic

FORMAT = 1
log = logging.getLogger(__name__)


def key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class CheckpointStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, kind: str, key: dict[str, Any]) -> Path:
        return self.root / "checkpoints" / f"{kind}-{key_hash(key)[:20]}.pt"

    def lock_path(self, kind: str, key: dict[str, Any]) -> Path:
        """Held while the checkpoint for `key` is trained (see bench.locks)."""
        return self.root / "checkpoints" / "locks" / f"{kind}-{key_hash(key)[:20]}.lock"

    def load(self, kind: str, key: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """(weights, meta) if a valid checkpoint for `key` exists, else None."""
        path = self.path(kind, key)
        if not path.is_file():
            return None
        problem = None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, not a torch file, unsafe content
            problem = f"does not load ({type(exc).__name__})"
        else:
            if not isinstance(payload, dict) or payload.get("format") != FORMAT:
                problem = "has an unknown format"
            elif payload.get("key") != json.loads(json.dumps(key, default=str)):
                problem = "was made for a different configuration"
            elif state_checksum(payload["state_dict"]) != payload.get("checksum"):
                problem = "has weights that do not match their checksum"
        if problem:
            log.warning("checkpoint %s %s; retraining it", path, problem)
            return None
        return payload["state_dict"], payload.get("meta", {})

    def save(self, kind: str, key: dict[str, Any], state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
        state = {k: v.detach().cpu().clone() for k, v in state.items()}
        payload = {
            "format": FORMAT,
            "key": json.loads(json.dumps(key, default=str)),
            "state_dict": state,
            "checksum": state_checksum(state),
            "meta": meta,
        }
        path = self.path(kind, key)
        atomic.torch_save(payload, path)
        return path
