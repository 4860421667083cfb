"""wsirisk.training.compare: known answers for td-AUC, IBS, the bootstrap interval, paired tests."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines.utils import concordance_index
from scipy.stats import ttest_rel, wilcoxon

from wsirisk.training import compare


def _cohort(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exponential survival whose rate grows with a latent risk; ~30 % censored."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    death = rng.exponential(24 * np.exp(-risk))
    censor = rng.uniform(0, 80, size=n)
    months = np.minimum(death, censor) + 0.1
    censorship = (censor < death).astype(int)
    return months, censorship, risk


def test_td_auc_perfect_risk_is_one_and_random_near_half() -> None:
    months, censorship, _ = _cohort(400)
    times = compare.event_time_quantiles(months, censorship)
    perfect = compare.time_dependent_auc(months, censorship, months, censorship, -months, times)
    assert perfect["reason"] is None and len(perfect["auc"]) == 3
    assert perfect["auc"] == pytest.approx([1.0] * 3)
    assert perfect["mean_auc"] == pytest.approx(1.0)
    noise = np.random.default_rng(1).normal(size=months.size)
    random = compare.time_dependent_auc(months, censorship, months, censorship, noise, times)
    assert abs(random["mean_auc"] - 0.5) < 0.08
    reverse = compare.time_dependent_auc(months, censorship, months, censorship, months, times)
    assert reverse["mean_auc"] == pytest.approx(0.0, abs=1e-9)


def test_td_auc_drops_times_outside_follow_up_and_explains_undefined() -> None:
    months, censorship, risk = _cohort(200)
    train = months[:100], censorship[:100]
    result = compare.time_dependent_auc(*train, months, censorship, risk, [-1.0, 10.0, 1e6])
    assert result["times"] == [10.0]
    assert len(result["dropped_times"]) == 2
    none = compare.time_dependent_auc(*train, months, censorship, risk, [1e6])
    assert none["mean_auc"] is None and "no evaluation time" in none["reason"]
    alive = compare.time_dependent_auc(*train, months, np.ones_like(censorship), risk, [10.0])
    assert alive["mean_auc"] is None and "no deaths" in alive["reason"]
    nan = compare.time_dependent_auc(*train, months, censorship, risk * np.nan, [10.0])
    assert nan["mean_auc"] is None and "non-finite" in nan["reason"]


def test_td_auc_follow_up_truncated_at_last_training_time_changes_nothing_before_it() -> None:
    from sksurv.metrics import cumulative_dynamic_auc
    from sksurv.util import Surv

    months, censorship, risk = _cohort(300, seed=3)
    short = months < 30  # the censoring sample ends at 30 months; the evaluated set does not
    train_m, train_c = months[short][:100], censorship[short][:100]
    keep = months < train_m.max()  # patients scikit-survival accepts as they are
    assert not keep.all()  # some are followed beyond the censoring sample: sksurv alone raises
    with pytest.raises(ValueError):
        cumulative_dynamic_auc(
            Surv.from_arrays(train_c == 0, train_m),
            Surv.from_arrays(censorship == 0, months),
            risk,
            [6.0, 12.0],
        )
    times = [6.0, 12.0]
    ours = compare.time_dependent_auc(train_m, train_c, months, censorship, risk, times)
    # patients followed beyond the censoring sample are controls at every t < tau: the same AUC
    # as scikit-survival on the data censored at tau by hand
    tau = np.nextafter(train_m.max(), -np.inf)
    cut_m = np.where(keep, months, tau)
    cut_c = np.where(keep, censorship, 1)
    auc, _ = cumulative_dynamic_auc(
        Surv.from_arrays(train_c == 0, train_m), Surv.from_arrays(cut_c == 0, cut_m), risk, times
    )
    assert ours["auc"] == pytest.approx(list(auc))


def test_integrated_brier_step_curves() -> None:
    months, censorship, _ = _cohort(300, seed=2)
    edges = [0.0, 6.0, 12.0, 24.0, float(months.max())]
    times = compare.event_time_quantiles(months, censorship, compare.IBS_QUANTILES)
    # a perfect curve: S = 1 before the bin of death, 0 from it on (deaths); censored = 1
    bins = np.searchsorted(edges[1:-1], months, side="right")
    perfect = np.ones((months.size, 4))
    for i, (k, c) in enumerate(zip(bins, censorship, strict=True)):
        if c == 0:
            perfect[i, k:] = 0.0
    flat = np.full((months.size, 4), 0.5)
    ibs_perfect = compare.integrated_brier(
        months, censorship, months, censorship, perfect, edges, times
    )
    ibs_flat = compare.integrated_brier(months, censorship, months, censorship, flat, edges, times)
    assert ibs_flat == pytest.approx(0.25, abs=1e-9)  # (S - indicator)^2 = 0.25 for everybody
    assert ibs_perfect < 0.1 < ibs_flat
    detail = compare.integrated_brier_detail(
        months, censorship, months, censorship, flat, edges, [5.0]
    )
    assert detail["ibs"] is None and "need at least 2" in detail["reason"]


def test_survival_at_reads_the_bin_of_each_time() -> None:
    curve = np.array([[0.9, 0.7, 0.4, 0.2]])
    edges = [0, 10, 20, 30, 40]
    got = compare.survival_at(curve, edges, [0, 9.9, 10, 25, 39, 55])
    assert got.tolist() == [[0.9, 0.9, 0.7, 0.4, 0.2, 0.2]]
    with pytest.raises(ValueError, match="n_bins \\+ 1"):
        compare.survival_at(curve, edges[:-1], [1.0])


def test_bootstrap_interval_contains_estimate_and_shrinks_with_n() -> None:
    widths = []
    for n in (60, 600):
        months, censorship, risk = _cohort(n, seed=4)
        estimate, low, high = compare.bootstrap_cindex(months, censorship, risk, n_boot=300)
        assert estimate == pytest.approx(
            concordance_index(months, -risk, event_observed=1 - censorship)
        )
        assert low < estimate < high
        widths.append(high - low)
    assert widths[1] < 0.6 * widths[0]
    again = compare.bootstrap_cindex(*_cohort(60, seed=4), n_boot=300)
    assert again == compare.bootstrap_cindex(*_cohort(60, seed=4), n_boot=300)  # seeded
    assert compare.bootstrap_cindex([1, 2], [1, 1], [0.1, 0.2]) == (None, None, None)


def test_paired_comparison() -> None:
    same = compare.paired_fold_comparison([0.6, 0.7, 0.65, 0.62, 0.7], [0.6, 0.7, 0.65, 0.62, 0.7])
    assert same["mean_diff"] == 0.0 and same["wilcoxon_p"] is None and same["ttest_p"] is None
    assert "do not vary" in same["reason"]
    a = [0.70, 0.72, 0.68, None, 0.75]
    b = [0.60, 0.65, 0.66, 0.61, 0.70]
    got = compare.paired_fold_comparison(a, b)
    kept_a, kept_b = [0.70, 0.72, 0.68, 0.75], [0.60, 0.65, 0.66, 0.70]
    assert got["n_folds"] == 4
    assert got["diffs"] == pytest.approx(np.subtract(kept_a, kept_b).tolist())
    assert got["mean_diff"] == pytest.approx(np.mean(np.subtract(kept_a, kept_b)))
    assert got["wilcoxon_p"] == pytest.approx(wilcoxon(kept_a, kept_b).pvalue)
    assert got["ttest_p"] == pytest.approx(ttest_rel(kept_a, kept_b).pvalue)
    one = compare.paired_fold_comparison([0.7, None], [0.6, 0.6])
    assert one["n_folds"] == 1 and one["wilcoxon_p"] is None and "1 fold" in one["reason"]
    with pytest.raises(ValueError, match="not paired"):
        compare.paired_fold_comparison([0.6], [0.6, 0.7])


def test_km_reference_brier_score() -> None:
    from lifelines import KaplanMeierFitter
    from sksurv.metrics import integrated_brier_score
    from sksurv.util import Surv

    months, censorship, _ = _cohort(300, seed=5)
    times = compare.event_time_quantiles(months, censorship, compare.IBS_QUANTILES)
    got = compare.km_integrated_brier(months, censorship, months, censorship, times)
    km = KaplanMeierFitter().fit(months, 1 - censorship).survival_function_at_times(times)
    y = Surv.from_arrays(censorship == 0, months)
    expected = integrated_brier_score(y, y, np.tile(km.to_numpy(), (months.size, 1)), times)
    assert got["ibs"] == pytest.approx(expected) and 0.05 < got["ibs"] < 0.25
    # a KM fitted on other patients is scored the same way
    other = compare.km_integrated_brier(
        months, censorship, months[:100], censorship[:100], times, months[100:], censorship[100:]
    )
    assert other["ibs"] is not None and other["reason"] is None
