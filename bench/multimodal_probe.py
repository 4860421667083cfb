"""Learnability probe: how much of the oracle can a *correctly specified* learned model reach?

    python bench/multimodal_probe.py --patients 200 --seed 1 --l2 0.01,0.1

The benchmark's structured reference (``bench/multimodal.py``) plants knowledge no model has
(the phenotype direction, which genes form each score).  This probe plants none: per patient
the mean of the whole bag's patch features ``m`` (64-d; its projection on the unknown phenotype
direction is the prevalence) and the fold-scaled omics ``o`` (107 features), and a Cox model
fit by gradient descent on each training fold,

    additive:     eta = a.m + b.o
    bilinear:     eta = a.m + b.o + (u.m)(v.o)        (rank 1: the form of the z*h term)

(Adam, lr 0.01, 500 full-batch steps, ridge ``l2`` on every parameter, seed 0; ``m`` z-scored on
the training fold, ``o`` by the trainer's own fold scaler).  It bounds from above what 5-fold
training on this many patients can learn of the interaction with the least data-hungry model
of the right form; the learned zoo models must find the same direction and product through
attention pooling, from the same labels.  Prints one line per fold and setting, then one JSON
line: per ``l2`` the mean C-index of each form, and the oracle's on the same folds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multimodal import ensure_cohort, parse_weights  # noqa: E402

from wsirisk.benchmark.cohort import CohortSpec  # noqa: E402


def fit_cox(
    m: Any, o: Any, months: Any, event: Any, bilinear: bool, l2: float, steps: int = 500
) -> Any:
    """Fit the additive or bilinear Cox model; returns ``eta(m, o)``."""
    import torch

    from wsirisk.models.losses import cox_ph_loss

    g = torch.Generator().manual_seed(0)
    a = torch.zeros(m.shape[1], requires_grad=True)
    b = torch.zeros(o.shape[1], requires_grad=True)
    u = (0.1 * torch.randn(m.shape[1], generator=g)).requires_grad_()
    v = (0.1 * torch.randn(o.shape[1], generator=g)).requires_grad_()
    params = [a, b, u, v] if bilinear else [a, b]

    def eta(m: Any, o: Any) -> Any:
        out = m @ a + o @ b
        return out + (m @ u) * (o @ v) if bilinear else out

    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = cox_ph_loss(eta(m, o), months, event)
        (loss + l2 * sum(p.square().sum() for p in params)).backward()
        opt.step()
    return lambda m2, o2: eta(m2, o2).detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weights", default="0.5,0.5,1.5,0.5")
    ap.add_argument("--l2", default="0.001,0.01,0.1", help="ridge weights, comma-separated")
    ap.add_argument("--cohort-root", type=Path, default=Path("results/bench/multimodal"))
    args = ap.parse_args()

    import pandas as pd
    import torch

    from wsirisk.omics.load import load_omics
    from wsirisk.training.data import FeatureBank, prepare_fold
    from wsirisk.training.metrics import cindex
    from wsirisk.training.splits import read_splits

    torch.set_num_threads(1)
    spec = CohortSpec(n_patients=args.patients, seed=args.seed,
                      weights=parse_weights(args.weights))  # fmt: skip
    cohort, _ = ensure_cohort(spec, 5, args.cohort_root)
    omics = load_omics(cohort / "omics.zarr")
    truth = pd.read_csv(cohort / "truth.csv").set_index("case_id")
    bank = FeatureBank(sorted((cohort / "features").glob("*.zarr")), cache_mb=0)
    bag_mean = {p: bank.load(p).mean(axis=0) for p in bank.by_patient}
    l2s = [float(x) for x in args.l2.split(",")]
    scores: dict[str, list[float]] = {"oracle": []}
    for k, fold in enumerate(read_splits(cohort / "splits.zarr")["folds"]):
        data = prepare_fold(omics, fold, 4, True, bank)

        def arrays(samples: list[Any]) -> tuple[Any, ...]:
            m = np.stack([bag_mean[s.patient] for s in samples])
            o = np.stack([np.concatenate(s.omics) for s in samples])
            months = np.array([s.months for s in samples])
            return m, o, months, np.array([s.censorship for s in samples])

        mt, ot, tt, ct = arrays(data.train)
        mv, ov, tv, cv = arrays(data.val)
        mu, sd = mt.mean(axis=0), mt.std(axis=0) + 1e-6

        def tensor(x: Any) -> Any:
            return torch.tensor(x, dtype=torch.float32)

        m_t, m_v = tensor((mt - mu) / sd), tensor((mv - mu) / sd)
        o_t, o_v = tensor(ot), tensor(ov)
        oracle = cindex(tv, truth.loc[[s.patient for s in data.val], "oracle_risk"], cv).value
        scores["oracle"].append(oracle)
        line = [f"fold {k}: oracle {oracle:.3f}"]
        for l2 in l2s:
            for form in ("additive", "bilinear"):
                eta = fit_cox(m_t, o_t, tensor(tt), tensor(1 - ct), form == "bilinear", l2)
                value = cindex(tv, eta(m_v, o_v), cv).value
                scores.setdefault(f"{form}_l2={l2:g}", []).append(value)
                line.append(f"{form} l2={l2:g} {value:.3f}")
        print("  ".join(line), file=sys.stderr, flush=True)
    means = {key: round(float(np.mean(v)), 4) for key, v in scores.items()}
    ratios = {key: round(v / means["oracle"], 3) for key, v in means.items() if key != "oracle"}
    print(json.dumps({"patients": args.patients, "seed": args.seed, "weights": args.weights,
                      "cindex_mean": means, "oracle_ratio": ratios,
                      "cohort": str(cohort)}))  # fmt: skip


if __name__ == "__main__":
    main()
