"""The per-example privacy audit: pure functions of stored per-example outputs.

- `statistics`: phi, the logit-scaled true-label confidence (= KLoM's margin);
- `challenge`: the NeurIPS'23 unlearning challenge's per-example epsilon, forgetting quality
  and final score;
- `ulira`: the U-LiRA-style per-example likelihood-ratio attack (held out);
- `klom`: KL divergence of margins;
- `report`: `bench audit` (collects replicas from records, writes audit.md/.csv), `plot`.
See docs/audit.md for the definitions, sources and choices.
"""
