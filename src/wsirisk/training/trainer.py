"""The training loop of one fold: seeded, deterministic on CPU, one patient per forward pass.

``batch_size`` patients form a mini-batch (their losses are averaged) and ``grad_accum``
mini-batches are accumulated before each optimizer step, so a step sees
``batch_size * grad_accum`` patients. ``max_patches`` randomly caps a bag at training time only
(kept in spatial order); evaluation always uses every tile.

``loss``: "nll" (discrete-time NLL per patient), "cox" (Cox partial likelihood over each
mini-batch: its ``batch_size`` patients go forward one at a time, their log-risks are stacked
and :func:`wsirisk.models.cox_ph_loss` (Breslow ties) is taken over that batch's risk set; a
batch without a death has no partial likelihood and contributes nothing; the batch's graphs are
held until its backward pass), or "auto" (the
model's ``default_loss``, "nll" if it declares none). After Cox training, Breslow's baseline
``H0`` is fit on the training patients and evaluated at the fold's bin edges, so survival curves
are ``exp(-H0 e^eta)`` (``FoldResult.baseline_cumhaz``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from wsirisk.models import (
    EXTRA_MODELS,
    USES_FEATURE_NAMES,
    breslow_cumhaz,
    build_model,
    cox_ph_loss,
    cox_survival,
    nll_loss,
    output_risk,
    survival_from_logits,
)
from wsirisk.training.data import FeatureBank, FoldData, Sample
from wsirisk.training.metrics import cindex

PATHOLOGY = "pathology"
GENOMICS = "genomics"
LOSSES = ("auto", "nll", "cox")


# What the ME-Mamba paper states about training (SGD, lr 1e-3, 30 epochs; batch 1 and 4 bins as in
# its MCAT-style set-up); momentum and weight decay are not stated: plain SGD.
PAPER_RECIPE: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 1e-3,
    "epochs": 30,
    "batch_size": 1,
    "grad_accum": 1,
    "n_bins": 4,
    "momentum": 0.0,
    "weight_decay": 0.0,
}
# Ours, not the paper's: chosen on COADREAD with the recipe above (docs/results.md).
OUR_SGD_ADDITIONS: dict[str, Any] = {"momentum": 0.9, "weight_decay": 1e-5}


@dataclass(frozen=True)
class TrainOptions:
    """The ``train`` section of config.yaml (defaults: Adam; :meth:`paper` gives the SGD recipe)."""

    model: str = "abmil_snn"
    seed: int = 0
    epochs: int = 20
    optimizer: str = "adam"
    lr: float = 2e-4
    momentum: float = 0.9
    weight_decay: float = 1e-5
    batch_size: int = 1
    grad_accum: int = 1
    n_bins: int = 4
    max_patches: int | None = None
    dropout: float = 0.25
    device: str = "auto"
    alpha: float = 0.0  # nll_loss weight of the uncensored term
    l1: float = 0.0  # L1 penalty on weight matrices (MCAT's reg), per patient
    standardize: bool = True  # z-score omics with the training fold's mean/std
    clip: float | None = None  # clip scaled omics to [-clip, clip]
    balanced: bool = False  # sample patients inversely to their (bin, censorship) class (MCAT)
    loss: str = "auto"  # "nll" | "cox" (batch-level risk sets) | "auto" (the model's default)
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def paper(cls, with_our_additions: bool = False, **overrides: Any) -> TrainOptions:
        """ME-Mamba's recipe as its paper states it (section 4.1 and its set-up): SGD, lr 1e-3,
        30 epochs, one patient per step, 4 survival bins, and nothing else (plain SGD: no
        momentum, no weight decay). ``with_our_additions`` adds what WE chose on COADREAD and
        the paper does not state: momentum 0.9 and weight decay 1e-5 (:data:`OUR_SGD_ADDITIONS`).
        """
        base: dict[str, Any] = dict(PAPER_RECIPE)
        if with_our_additions:
            base.update(OUR_SGD_ADDITIONS)
        return cls.from_dict({**base, **overrides})

    @classmethod
    def from_dict(cls, options: dict[str, Any], source: str = "options") -> TrainOptions:
        """Validate a dict (e.g. the config's ``train`` section); errors name the bad key."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        opts = cls(**options)
        checks = {
            "epochs": opts.epochs >= 1,
            "lr": opts.lr > 0,
            "batch_size": opts.batch_size >= 1,
            "grad_accum": opts.grad_accum >= 1,
            "n_bins": opts.n_bins >= 1,
            "dropout": 0 <= opts.dropout < 1,
            "optimizer": opts.optimizer in {"adam", "adamw", "sgd", "radam"},
            "device": opts.device in {"auto", "cpu", "cuda"} or opts.device.startswith("cuda:"),
            "max_patches": opts.max_patches is None or opts.max_patches >= 1,
            "clip": opts.clip is None or opts.clip > 0,
            "loss": opts.loss in LOSSES,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{source}: invalid value for {bad[0]!r}: {getattr(opts, bad[0])!r}")
        return opts

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Prediction:
    """Evaluation outputs for a list of samples (order kept)."""

    risk: np.ndarray  # (P,) float32
    survival: np.ndarray  # (P, n_bins) float32
    attention: dict[str, np.ndarray]  # slide_id -> (N,) float32
    embeddings: dict[str, np.ndarray]  # name -> (P, D) float32, NaN rows where absent


@dataclass
class FoldResult:
    model: nn.Module
    model_kwargs: dict[str, Any]
    history: list[dict[str, Any]]
    val: Prediction
    val_samples: list[Sample]  # the scored validation patients, in ``val`` order
    unusable: list[str]  # patients with no modality the model uses (not trained / scored)
    device: str
    seconds: float
    loss: str = "nll"  # the loss trained with ("auto" resolved)
    baseline_cumhaz: list[float] | None = None  # Cox: Breslow H0 at bin edges 1..n_bins


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def usable(sample: Sample, modalities: set[str]) -> bool:
    """Whether the model can score this patient (it has at least one modality the model uses)."""
    has = {PATHOLOGY: sample.has_pathology, GENOMICS: sample.omics is not None}
    return any(has.get(m, m in sample.extra) for m in modalities)


class _Inputs:
    """Turns samples into model inputs on a device (bag cap at training time only)."""

    def __init__(
        self, bank: FeatureBank | None, modalities: set[str], device: torch.device
    ) -> None:
        self.bank = bank
        self.modalities = modalities
        self.device = device

    def __call__(
        self, sample: Sample, max_patches: int | None = None, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor | None, list[torch.Tensor] | None, torch.Tensor | None]:
        """``(x_path, x_omics, coords)``: coords (N, 2) um, aligned with x_path (or None)."""
        x_path = x_omics = coords = None
        if PATHOLOGY in self.modalities and sample.has_pathology and self.bank is not None:
            bag_np, where_np = self.bank.load_with_coords(sample.patient)
            bag, where = torch.from_numpy(bag_np), torch.from_numpy(where_np)
            if max_patches is not None and bag.shape[0] > max_patches:
                keep = torch.randperm(bag.shape[0], generator=gen)[:max_patches].sort().values
                bag, where = bag.index_select(0, keep), where.index_select(0, keep)
            x_path, coords = bag.to(self.device), where.to(self.device)
        if GENOMICS in self.modalities and sample.omics is not None:
            x_omics = [torch.from_numpy(g).to(self.device) for g in sample.omics]
        return x_path, x_omics, coords

    def extra(self, sample: Sample) -> dict[str, torch.Tensor] | None:
        """The patient's extra modality vectors the model uses (None when it has none)."""
        out = {
            name: torch.from_numpy(vec).to(self.device)
            for name, vec in sample.extra.items()
            if name in self.modalities
        }
        return out or None


def epoch_order(train: list[Sample], balanced: bool, gen: torch.Generator) -> list[int]:
    """One epoch's patient order: a permutation, or MCAT's class-balanced draw with replacement.

    Balanced: a patient's weight is ``1 / size of its (time bin, censorship) class``.
    """
    if not balanced:
        return torch.randperm(len(train), generator=gen).tolist()
    keys = [(s.y_bin, s.censorship) for s in train]
    counts = {k: keys.count(k) for k in set(keys)}
    weights = torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.float64)
    return torch.multinomial(weights, len(train), replacement=True, generator=gen).tolist()


def _optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if opts.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay
        )
    if opts.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    if opts.optimizer == "radam":  # SurvMamba's optimizer (its section 4)
        return torch.optim.RAdam(params, lr=opts.lr, weight_decay=opts.weight_decay)
    return torch.optim.Adam(params, lr=opts.lr, weight_decay=opts.weight_decay)


def _l1(model: nn.Module) -> torch.Tensor:
    return sum(p.abs().sum() for p in model.parameters() if p.dim() > 1)  # type: ignore[return-value]


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed torch/numpy and make CPU kernels deterministic."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def train_fold(
    data: FoldData,
    opts: TrainOptions,
    bank: FeatureBank | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[dict[str, Any], nn.Module], None] | None = None,
) -> FoldResult:
    """Train ``opts.model`` on ``data.train``; evaluate on ``data.val`` after every epoch.

    ``on_epoch(record, model)`` is called after each epoch's record (e.g. to keep the weights
    of the best epoch on an inner validation set passed as ``data.val``).
    """
    start = time.perf_counter()
    device = resolve_device(opts.device)
    seed_everything(opts.seed, device)
    path_dim = bank.dim if bank is not None and bank.dim is not None else 1024
    kwargs = dict(
        path_dim=path_dim,
        omics_sizes=data.omics_sizes,
        n_bins=data.bins.n_bins,
        dropout=opts.dropout,
        **opts.model_kwargs,
    )
    if opts.model in USES_FEATURE_NAMES and data.feature_names:
        kwargs.setdefault("feature_names", data.feature_names)
    if data.extra_dims and opts.model in EXTRA_MODELS:
        kwargs.setdefault("extra_dims", dict(data.extra_dims))
    model = build_model(opts.model, **kwargs).to(device)
    if hasattr(model, "portable_kwargs"):  # e.g. a gene hierarchy file -> its rows
        kwargs = model.portable_kwargs(kwargs)
    loss_name = getattr(model, "default_loss", "nll") if opts.loss == "auto" else opts.loss
    if loss_name == "cox" and opts.batch_size < 2:
        raise ValueError(
            f"loss 'cox' ({opts.model}) needs 'batch_size' >= 2 (a risk set of one patient has "
            f"no gradient; M4Survive's paper uses 16), got {opts.batch_size}"
        )
    modalities = set(model.modalities)
    train = [s for s in data.train if usable(s, modalities)]
    val = [s for s in data.val if usable(s, modalities)]
    if not train:
        raise ValueError(f"no training patient has a modality of {opts.model!r} ({modalities})")
    inputs = _Inputs(bank, modalities, device)
    optimizer = _optimizer(model, opts)
    gen = torch.Generator().manual_seed(opts.seed)
    per_step = opts.batch_size * opts.grad_accum
    history: list[dict[str, Any]] = []
    val_pred = None
    for epoch in range(1, opts.epochs + 1):
        model.train()
        order = epoch_order(train, opts.balanced, gen)
        train_risk = np.full(len(train), np.nan)
        total = 0.0
        optimizer.zero_grad(set_to_none=True)
        if loss_name == "cox":
            total = _cox_epoch(model, train, order, inputs, opts, optimizer, gen, train_risk)
            order = []  # nothing left for the per-patient NLL loop below
        for step, i in enumerate(order, start=1):
            sample = train[i]
            x_path, x_omics, coords = inputs(sample, opts.max_patches, gen)
            out = model(x_path, x_omics, coords=coords, extra=inputs.extra(sample))
            y = torch.tensor([sample.y_bin], device=device)
            c = torch.tensor([sample.censorship], device=device)
            loss = nll_loss(out.logits, y, c, alpha=opts.alpha) + out.aux_loss
            if opts.l1 > 0:
                loss = loss + opts.l1 * _l1(model)
            (loss / per_step).backward()
            total += float(loss.detach())
            train_risk[i] = float(output_risk(out).detach().item())
            if step % per_step == 0 or step == len(order):
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        val_pred = predict(model, val, inputs, data.bins.n_bins)
        seen = np.flatnonzero(np.isfinite(train_risk))
        train_c = cindex(
            [train[i].months for i in seen], train_risk[seen], [train[i].censorship for i in seen]
        ).value
        val_c = cindex([s.months for s in val], val_pred.risk, [s.censorship for s in val]).value
        record = {
            "epoch": epoch,
            "loss": total / len(train),
            "train_cindex": train_c,
            "val_cindex": val_c,
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record, model)
        log(
            f"epoch {epoch:3d}/{opts.epochs}  loss {record['loss']:.4f}  "
            f"train C {_fmt(train_c)}  val C {_fmt(val_c)}"
        )
    assert val_pred is not None
    baseline = None
    if loss_name == "cox":
        baseline = fit_baseline(model, train, inputs, data.bins.edges_months[1:])
        curves = cox_survival(torch.from_numpy(val_pred.risk).double(), baseline)
        val_pred.survival = curves.numpy().astype(np.float32)
    return FoldResult(
        model=model,
        model_kwargs=kwargs,
        history=history,
        val=val_pred,
        val_samples=val,
        unusable=[s.patient for s in data.train + data.val if not usable(s, modalities)],
        device=str(device),
        seconds=time.perf_counter() - start,
        loss=loss_name,
        baseline_cumhaz=None if baseline is None else baseline.tolist(),
    )


def _cox_epoch(
    model: nn.Module,
    train: list[Sample],
    order: list[int],
    inputs: _Inputs,
    opts: TrainOptions,
    optimizer: torch.optim.Optimizer,
    gen: torch.Generator,
    train_risk: np.ndarray,
) -> float:
    """One epoch of Cox partial likelihood over mini-batches of ``opts.batch_size`` patients.

    Each batch's log-risks (one forward pass per patient) form the risk set of
    :func:`cox_ph_loss`; the batch loss (plus the mean auxiliary loss and the L1 term) is divided
    by ``grad_accum`` and the optimizer steps every ``grad_accum`` batches and at the end. A
    batch without a death is skipped (no partial likelihood). Returns the sum over batches of
    loss x batch size (the epoch's per-patient mean once divided by the number of patients).
    """
    device = inputs.device
    batches = [order[k : k + opts.batch_size] for k in range(0, len(order), opts.batch_size)]
    total = 0.0
    for b, batch in enumerate(batches, start=1):
        risks, aux = [], []
        for i in batch:
            sample = train[i]
            x_path, x_omics, coords = inputs(sample, opts.max_patches, gen)
            out = model(x_path, x_omics, coords=coords, extra=inputs.extra(sample))
            risk = output_risk(out).reshape(())
            risks.append(risk)
            aux.append(out.aux_loss)
            train_risk[i] = float(risk.detach())
        months = torch.tensor([train[i].months for i in batch], device=device)
        event = torch.tensor([1 - train[i].censorship for i in batch], device=device)
        if int(event.sum()) > 0:
            loss = cox_ph_loss(torch.stack(risks), months, event) + torch.stack(aux).mean()
            if opts.l1 > 0:
                loss = loss + opts.l1 * _l1(model)
            (loss / opts.grad_accum).backward()
            total += float(loss.detach()) * len(batch)
        if b % opts.grad_accum == 0 or b == len(batches):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return total


@torch.no_grad()
def fit_baseline(
    model: nn.Module, train: list[Sample], inputs: _Inputs, edges_months: tuple[float, ...]
) -> torch.Tensor:
    """Breslow's ``H0`` (float64, one value per edge) from the training patients' final
    log-risks (eval mode, every tile); also stored in the model when it has ``set_baseline``."""
    risk = predict(model, train, inputs, len(edges_months)).risk
    months = [s.months for s in train]
    event = [1 - s.censorship for s in train]
    cumhaz = breslow_cumhaz(torch.from_numpy(risk), months, event, list(edges_months))
    if hasattr(model, "set_baseline"):
        model.set_baseline(cumhaz)
    return cumhaz


def predict_samples(
    model: nn.Module,
    samples: list[Sample],
    device: str,
    n_bins: int,
    bank: FeatureBank | None = None,
    baseline: list[float] | None = None,
) -> tuple[Prediction, list[Sample]]:
    """:func:`predict` on the samples the model can score; returns them too (``Prediction`` order)."""
    modalities = set(model.modalities)
    kept = [s for s in samples if usable(s, modalities)]
    inputs = _Inputs(bank, modalities, torch.device(device))
    return predict(model, kept, inputs, n_bins, baseline), kept


def _fmt(value: float | None) -> str:
    return "  n/a " if value is None else f"{value:.4f}"


@torch.no_grad()
def predict(
    model: nn.Module,
    samples: list[Sample],
    inputs: _Inputs,
    n_bins: int,
    baseline: list[float] | None = None,
) -> Prediction:
    """Risk, survival curve, per-slide attention and pooled embeddings (eval mode, all tiles).

    With a Cox ``baseline`` (H0 at the bin edges), curves are ``exp(-H0 e^risk)`` instead of
    the logits' (:func:`wsirisk.models.cox_survival`).
    """
    model.eval()
    risks, curves = [], []
    attention: dict[str, np.ndarray] = {}
    emb_rows: list[dict[str, np.ndarray]] = []
    for sample in samples:
        x_path, x_omics, coords = inputs(sample)
        out = model(x_path, x_omics, coords=coords, extra=inputs.extra(sample))
        risks.append(float(output_risk(out).item()))
        curves.append(survival_from_logits(out.logits)[0].float().cpu().numpy())
        if out.attention is not None and x_path is not None:
            att = out.attention.float().cpu().numpy().reshape(-1)
            if att.shape[0] == x_path.shape[0]:
                offset = 0
                for ref in sample.slides:
                    attention[ref.slide_id] = att[offset : offset + ref.n_tiles]
                    offset += ref.n_tiles
        emb_rows.append(
            {
                name: t.detach().float().cpu().reshape(-1, t.shape[-1]).mean(0).numpy()
                for name, t in out.embeddings.items()
                if t is not None and t.numel() > 0
            }
        )
    survival = np.stack(curves).astype(np.float32) if curves else np.zeros((0, n_bins), np.float32)
    if baseline is not None and curves:
        survival = cox_survival(torch.tensor(risks, dtype=torch.float64), baseline).numpy()
        survival = survival.astype(np.float32)
    embeddings: dict[str, np.ndarray] = {}
    for name in sorted({k for row in emb_rows for k in row}):
        dim = next(row[name].shape[0] for row in emb_rows if name in row)
        mat = np.full((len(samples), dim), np.nan, dtype=np.float32)
        for r, row in enumerate(emb_rows):
            if name in row:
                mat[r] = row[name]
        embeddings[name] = mat
    return Prediction(np.asarray(risks, dtype=np.float32), survival, attention, embeddings)
