"""The per-example audit on constructed outputs whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.audit import challenge, klom, ulira
from bench.audit.statistics import logit_scaled_confidence

K, N_EX = 8, 40


def _retrain_like(seed: int, k: int = K, n: int = N_EX) -> np.ndarray:
    """phi of n examples under k models: per-example centre (example difficulty) + model noise."""
    rng = np.random.default_rng(seed)
    centre = np.random.default_rng(1).normal(2.0, 2.0, n)  # the same examples in every call
    return centre + rng.normal(0, 1.0, (k, n))


def test_phi_is_log_odds_of_the_true_label():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-3.0, 5.0, 1.0]])
    labels = np.array([0, 1, 2])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    py = p[np.arange(3), labels]
    np.testing.assert_allclose(logit_scaled_confidence(logits, labels), np.log(py / (1 - py)), rtol=1e-12)
    # stable where softmax saturates: z_y - z_other exactly
    assert logit_scaled_confidence(np.array([[1000.0, 0.0]]), np.array([0]))[0] == 1000.0


def test_epsilon_formula_on_known_rates():
    # one rule with FPR 0.1, FNR 0.2: max(log(.9-d)-log .2, log(.8-d)-log .1)
    d = challenge.DELTA
    expected = max(math.log(1 - d - 0.1) - math.log(0.2), math.log(1 - d - 0.2) - math.log(0.1))
    assert challenge.epsilon_from_rates(np.array([0.1]), np.array([0.2])) == pytest.approx(expected, abs=1e-12)
    assert challenge.epsilon_from_rates(np.array([0.0, 0.3]), np.array([0.0, 0.3])) == math.inf  # perfect separation
    # (0, .01) would give log(.99)-log(1e-5) if kept; exactly one rate 0 means it is discarded
    assert challenge.epsilon_from_rates(np.array([0.0, 0.1]), np.array([0.01, 0.2])) == pytest.approx(expected, abs=1e-12)
    assert challenge.epsilon_from_rates(np.array([0.6]), np.array([0.6])) == 0.0  # clipped at 0


def test_points_follow_the_bins_and_the_model_count():
    # N = 8: ceil(log 7) = 2 -> bins [0,.5) [.5,1) [1,1.5) [1.5,2) worth 1, 1/2, 1/4, 1/8; beyond: 0
    eps = np.array([0.0, 0.49, 0.5, 1.2, 1.99, 2.0, 50.0])
    np.testing.assert_array_equal(challenge.example_points(eps, 8), [1, 1, 0.5, 0.25, 0.125, 0, 0])
    # N = 512 (the challenge): ceil(log 511) = 7 -> 14 bins, the last [6.5, 7) worth 2^-13
    assert challenge.bin_points(512)[-1] == 2.0 ** -13 and len(challenge.bin_points(512)) == 14
    assert challenge.forgetting_quality(eps, 8) == pytest.approx((1 + 1 + 0.5 + 0.25 + 0.125) / 7)


def test_another_retrain_seed_scores_near_the_best():
    # "The best" a method can score is what another draw from Retrain's own distribution
    # scores at the same number of models: sampling noise in the tails of N samples alone
    # gives epsilons above 1 (a tail threshold with 1 vs 5 models over it: log 5). Measured on
    # these constructed outputs: about 0.19-0.22 at K = 8 and at 64 models per side.
    retrain = _retrain_like(10)
    draws = [challenge.forgetting_quality(challenge.epsilons(_retrain_like(s), retrain), K) for s in (11, 12, 13)]
    memorised = challenge.forgetting_quality(challenge.epsilons(_retrain_like(14) + 4.0, retrain), K)
    assert all(0.12 < d < 0.3 for d in draws)
    assert memorised < 0.02 < min(draws)
    # with more models the score resolves smaller differences: a shift of half the model noise
    many = 64
    retrain = _retrain_like(10, many, 30)
    same = challenge.forgetting_quality(challenge.epsilons(_retrain_like(11, many, 30), retrain), many)
    shifted = challenge.forgetting_quality(challenge.epsilons(_retrain_like(13, many, 30) + 0.5, retrain), many)
    assert shifted < 0.7 * same
    assert challenge.final_score(draws[0], 99.0, 99.0, 97.0, 97.0) == draws[0]
    assert challenge.final_score(0.5, 90.0, 100.0, 80.0, 100.0) == pytest.approx(0.5 * 0.9 * 0.8)


def test_the_original_scores_the_worst():
    retrain = _retrain_like(10)
    # Every Original replica is the same model (the method changes nothing): a point mass,
    # far narrower than Retrain's spread -> epsilon capped -> 0 points per example.
    original = np.tile(retrain.mean(0) + 3.0, (K, 1))
    eps = challenge.epsilons(original, retrain)
    assert np.all(eps == challenge.EPSILON_CAP)
    assert challenge.forgetting_quality(eps, K) == 0.0


def test_a_point_mass_inside_retrains_spread_is_capped():
    # The challenge's rule for a peaky distribution: identical replicas that coincide with one
    # Retrain model's value are never perfectly separated (every interval holding them holds
    # that model too; every other rule has an error rate of 0 and is discarded), so only the
    # range-ratio rule gives them the cap.
    retrain = _retrain_like(10)[:, :5]
    point = np.tile(retrain[0], (K, 1))
    assert np.all(challenge.epsilons(point, retrain) == challenge.EPSILON_CAP)


def test_ulira_separates_memorised_from_unseen_and_not_two_retrains():
    retrain, other = _retrain_like(10), _retrain_like(11)
    memorised = _retrain_like(12) + 3.0  # the models still fit D_f: higher confidence on every example
    strong = ulira.attack(memorised, retrain)
    null = ulira.attack(other, retrain)
    assert strong["auc"] > 0.95 and strong["tpr_at_1pct"] > 0.5
    assert abs(null["auc"] - 0.5) < 0.06 and null["tpr_at_1pct"] < 0.05
    assert strong["scored"] == K * N_EX


def test_ulira_is_held_out():
    # Each model is scored by Gaussians fitted without it: a replica that is an outlier of its
    # own kind must not be pulled toward its kind's fit. With the fit in-sample, this
    # construction would give AUC 1.0.
    u = np.array([[0.0], [1.0], [2.0]])
    r = np.array([[0.5], [1.5], [2.5]])
    su, sr = ulira.held_out_scores(u, r)
    # fold 0 fits U on {1, 2} and R on {1.5, 2.5}; scores 0.0 and 0.5 by those fits only
    mu_u, sd_u, mu_r, sd_r = 1.5, np.std([1, 2], ddof=1), 2.0, np.std([1.5, 2.5], ddof=1)
    expect = lambda x: (-0.5 * ((x - mu_u) / sd_u) ** 2 - np.log(sd_u)) - (-0.5 * ((x - mu_r) / sd_r) ** 2 - np.log(sd_r))
    assert su[0, 0] == pytest.approx(expect(0.0)) and sr[0, 0] == pytest.approx(expect(0.5))
    with pytest.raises(ValueError):
        ulira.held_out_scores(u[:2], r[:2])


def test_roc_reads_exact_rates():
    fpr, tpr = ulira.roc(np.array([3.0, 2.0, 0.5]), np.array([1.0, 0.0, -1.0, 2.0]))
    # descending: 3 (+), {2 (+), 2 (-)} tied, 1 (-), 0.5 (+), 0 (-), -1 (-)
    np.testing.assert_allclose(fpr, [0, 0, 0.25, 0.5, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert ulira.auc(fpr, tpr) == pytest.approx(9.5 / 12)  # Mann-Whitney: ties count one half
    assert ulira.tpr_at(fpr, tpr, 0.01) == pytest.approx(1 / 3)


def test_klom_zero_for_same_histogram_large_for_disjoint():
    same = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]])
    assert np.all(klom.klom(same, same) == 0.0)
    far = klom.klom(same + 100.0, same)
    # disjoint supports: the 4 shifted margins share the top bin (width 104/20), where q has 0
    np.testing.assert_allclose(far, np.log(1.0 / 1e-5))
    # the largest sample counts (the last bin is closed): p = {bin 0: .5, bin 19: .5}, q = {bin 0: .5, bin 10: .5}
    assert klom.example_klom(np.array([0.0, 1.0]), np.array([0.0, 0.5])) == pytest.approx(0.5 * np.log(0.5 / 1e-5))
    # KL(method || Retrain), not the reverse: mass where Retrain has none is what costs
    assert klom.example_klom(np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(
        0.75 * np.log(0.75 / 0.5) + 0.25 * np.log(0.25 / 0.5))
    retrain, other = _retrain_like(10), _retrain_like(11)
    assert np.median(klom.klom(other, retrain)) < np.median(klom.klom(retrain + 3.0, retrain))


def test_scores_are_deterministic_functions_of_the_outputs():
    retrain, other = _retrain_like(10), _retrain_like(11)
    a = (challenge.epsilons(other, retrain), ulira.attack(other, retrain), klom.klom(other, retrain))
    b = (challenge.epsilons(other.copy(), retrain.copy()), ulira.attack(other.copy(), retrain.copy()),
         klom.klom(other.copy(), retrain.copy()))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[2], b[2])


# ---------------------------------------------------------------------- the report over stored outputs


def _stored_records(records_dir, seeds=(0, 1), methods=("Retrain", "Original", "GA"), reversed_forget=()):
    """Records and outputs files of K = 3 replicas per method and seed (random logits; the forget
    samples stored in reverse order for the methods in `reversed_forget`)."""
    from bench.outputs import SETS, write_outputs

    rng = np.random.default_rng(0)
    records = []
    for seed in seeds:
        for method in methods:
            for replica in range(3):
                arrays = {}
                for s in SETS:
                    index = np.arange(12)[::-1] if s == "forget" and method in reversed_forget else np.arange(12)
                    arrays.update({f"{s}_index": index.copy(), f"{s}_labels": index % 10,
                                   f"{s}_logits": rng.normal(0, 2, (12, 10)).astype(np.float32)})
                cell_id = f"{method}__digits__small_cnn__random10__seed{seed}__rep{replica}"
                records.append({"status": "ok", "outputs": write_outputs(records_dir, cell_id, arrays),
                                "cell": {"dataset": "digits", "model": "small_cnn", "scenario": "random10", "seed": seed,
                                         "method": method, "replica": replica, "profile": "test"},
                                "config": {"train": {"epochs": 1, "batch_size": 8, "lr": 0.1}},
                                "metrics": {"RA": 90.0, "TA": 80.0, "MIA": 50.0, "avg_gap": 1.0 + replica}})
    return records


def test_a_method_whose_stored_samples_are_not_retrains_is_refused(tmp_path):
    """Every comparison pairs an example's column with Retrain's by position."""
    from bench.audit.report import run_audit
    from bench.errors import ConfigError

    assert len(run_audit(_stored_records(tmp_path), tmp_path)[0]) == 6
    with pytest.raises(ConfigError, match=r"GA .*forget samples are not Retrain's"):
        run_audit(_stored_records(tmp_path, reversed_forget=("GA",)), tmp_path)


def test_the_figure_draws_each_method_of_the_first_split_once_with_that_splits_f(tmp_path, monkeypatch):
    from bench.audit import plot
    from bench.audit.report import run_audit

    table, examples = run_audit(_stored_records(tmp_path), tmp_path)
    figures = []
    monkeypatch.setattr(plot.plt, "close", figures.append)
    plot.epsilon_figure(table, examples, tmp_path / "figures")
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_title()]
    first = table[table["seed"] == 0].set_index("method")["F"]
    assert titles == [f"{m} (F = {first[m]:.3f})" for m in ("Original", "GA")]
