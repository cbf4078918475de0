"""CU: contrastive unlearning in Euclidean space (Lee et al., arXiv 2401.10458)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.method import UnlearnContext, register_method, register_preset
from methods._contrastive import ContrastiveUnlearning, EuclideanGeometry, Geometry


@register_method("CU", smoke={"max_passes": 6})
@dataclass(frozen=True)
class CU(ContrastiveUnlearning):
    """Contrastive unlearning: push forget embeddings from their class toward other classes (cosine).

    Similarity `s_ij = z_i . z_j / tau` on L2-normalised embeddings; the losses,
    the omega-step procedure and the stop rule are in `methods/_contrastive.py`.
    Defaults are the official code's (methods.md): tau 0.7, omega 4, lambda_UL 3,
    lambda_CE 1, SGD lr 1e-3 momentum 0.9, batch 128. Weight decay is not pinned
    there; 5e-4 is the suite's setting. CoUn's retuned ranges (lambda_UL
    [0.1, 2], tau (0, 0.2], omega [1, 5]) can be set with `--set CU.key=value`.
    The embedding defaults to the normalised penultimate features, since every
    method here starts from a plain classifier (methods.md [choice]); the
    official projection head is `embedding=projection_head`. `max_passes` 50 is
    CoUn's epoch cap, a bound only: the stop rule normally ends the run (CoUn's
    CU row, 3.36 PFLOPs at 10% random, is about 22 passes at these defaults:
    40,480 trained samples at 6F plus 15,000 evaluated at 2F per pass).
    """

    def geometry(self, ctx: UnlearnContext) -> Geometry:
        return EuclideanGeometry()


# The HCU reference (Progetto-DL) tuned both geometries with one procedure; these presets let
# the table answer its question (geometry, not tuning): CU at the reference's Euclidean
# weights beside HCU at its hyperbolic ones, and CU at HCU's weights (geometry alone differs).
register_preset("CU-euclid-ref", "CU", {"temperature": 0.3, "omega": 4, "lambda_ce": 0.3, "lambda_ul": 0.7},
                summary="CU at the HCU reference's tuned Euclidean weights (tau 0.3, omega 4, lambda_CE 0.3, "
                        "lambda_UL 0.7)")
register_preset("CU-hcu-weights", "CU", {"temperature": 0.6, "omega": 4, "lambda_ce": 0.8, "lambda_ul": 0.2},
                summary="CU at HCU's default weights (tau 0.6, lambda_CE 0.8, lambda_UL 0.2): only the geometry "
                        "differs from HCU")
