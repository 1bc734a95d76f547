"""Composable loss terms and the paper's objective.

Every term maps a :class:`LossInput` to a per-model loss ``[B]`` (one value per batch member);
an :class:`Objective` is a weighted sum of named terms. The fitting loop sums the ``[B]`` total
for the backward pass, so the B models get independent gradients. Terms with learnable
hyper-parameters (the bifurcation constraint's ca, cb, cc; the priors' means and precisions) are
``nn.Module`` s whose parameters the optimizer updates together with the model's.

The paper's objective (MODEL.md, "The fitting objective"; :func:`griffiths2022_objective`)::

    L = -log(0.5 + 0.5 r)                                             FCCorrelationLoss, weight 1
      + 5 (ca' g_IE'^2 - cb' g_IE' + cc' - g_EI')^2                   BifurcationLoss,   weight 5
      + 0.1 mean_i mean_t [E ln E + (1-E) ln(1-E)
                           + 0.5 I ln I + 0.5 (1-I) ln(1-I)]          EntropyLoss,       weight 0.1
      + gv' (relu(g) - relu(gm))^2 + log gv'                          GaussianPrior("g")
      + (same for g_EE)                                               GaussianPrior("g_EE")

with ``p' = 0.001 + relu(p)`` for ca, cb, cc, gv and the model's g_IE, g_EI (the model's own
transform), and ``relu`` of the *unconstrained* g and g_EE in the priors, as in the paper's code.
Note the sign of ``log gv'``: the paper adds it, which drives the precision down over training;
``GaussianPrior(form="gaussian")`` is the textbook ``0.5 gv'(p - m)^2 - 0.5 log gv'`` instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from .model import fc_matrix, lower_tri, pearson


@dataclass
class LossInput:
    """What a loss term sees for one update.

    sim   # [B, S, N] simulated BOLD
    emp   # [B, S, N] empirical BOLD (same samples)
    E, I  # [B, R, N] simulated gating variables recorded every step (None if not recorded)
    model # the RWW module (for parameter-based terms)
    """
    sim: torch.Tensor
    emp: torch.Tensor
    E: torch.Tensor | None = None
    I: torch.Tensor | None = None
    model: nn.Module | None = None


def _positive(p: torch.Tensor) -> torch.Tensor:
    return 0.001 + torch.relu(p)


class LossTerm(nn.Module):
    """Base class: ``forward(x: LossInput) -> [B]``. ``needs_states``: needs E, I every step."""
    needs_states = False

    def forward(self, x: LossInput) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class FCCorrelationLoss(LossTerm):
    """``-log(0.5 + 0.5 r)``, r = Pearson correlation of the lower triangles (k=-1) of the
    simulated and empirical FC, both computed over the samples given (the window)."""

    def forward(self, x):
        r = pearson(lower_tri(fc_matrix(x.sim)), lower_tri(fc_matrix(x.emp)))
        return -torch.log(0.5 + 0.5 * r)


class FCRMSELoss(LossTerm):
    """Root mean square difference of the FC lower triangles."""

    def forward(self, x):
        d = lower_tri(fc_matrix(x.sim)) - lower_tri(fc_matrix(x.emp))
        return torch.sqrt((d * d).mean(-1) + 1e-30)


class BoldMSELoss(LossTerm):
    """Mean squared difference of the BOLD time series."""

    def forward(self, x):
        return ((x.sim - x.emp) ** 2).mean(dim=(-2, -1))


def _block_variance(stat, emp: torch.Tensor, blocks: int) -> torch.Tensor:
    """Sampling variance of ``stat(emp)`` (``[B, M]``) over the whole run, estimated from the
    run itself: the variance of the statistic over ``blocks`` equal consecutive blocks, divided by
    ``blocks`` (variance ~ 1/length), pooled (averaged) over the M elements. ``[B]``, no gradient."""
    with torch.no_grad():
        B, T, N = emp.shape
        L = T // blocks
        if L < 3:
            raise ValueError(f"normalize='blocks': {T} frames are too few for {blocks} blocks")
        parts = emp[:, :blocks * L].reshape(B, blocks, L, N)
        s = stat(parts)                                     # [B, blocks, M]
        v = s.var(dim=1).mean(-1) / blocks
        return v.clamp_min(1e-30)


class _MomentLoss(LossTerm):
    """Squared difference of a per-region (or per-pair) statistic of the simulated and the
    empirical BOLD, averaged over its elements; ``normalize="blocks"`` divides it by the
    empirical statistic's sampling variance, estimated from the data alone by
    :func:`_block_variance` (so that terms of different units weigh alike: ~1 + T/T_sim at the
    data-generating parameters). For full-session fits; the simulated run may be longer than the
    empirical one (statistics are compared, not time points)."""

    def __init__(self, normalize: str | None = None, blocks: int = 4):
        super().__init__()
        if normalize not in (None, "blocks"):
            raise ValueError(f"normalize: expected None or 'blocks', got {normalize!r}")
        self.normalize, self.blocks = normalize, int(blocks)

    def _stat(self, bold, emp_sd):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        emp_sd = x.emp.std(-2)
        d = self._stat(x.sim, emp_sd) - self._stat(x.emp, emp_sd)
        out = (d * d).mean(-1)
        if self.normalize == "blocks":
            out = out / _block_variance(lambda b: self._stat(b, emp_sd[:, None]), x.emp, self.blocks)
        return out


class BoldMeanLoss(_MomentLoss):
    """``mean_i ((mean_t sim_i - mean_t emp_i) / sd_t emp_i)^2``: the per-region BOLD level
    difference in units of the empirical region's temporal standard deviation (optionally
    normalised, see :class:`_MomentLoss`).

    Carries the level of the BOLD signal, which the FC does not see; meaningful only when the
    empirical BOLD is in the model's units (synthetic data fitted with ``scale="none"``), not for
    real BOLD, whose baseline is arbitrary."""

    def _stat(self, bold, emp_sd):
        return bold.mean(-2) / (emp_sd + 1e-12)


class BoldLogSDLoss(_MomentLoss):
    """``mean_i (log sd_t sim_i - log sd_t emp_i)^2``: the per-region BOLD amplitude (temporal
    standard deviation) on a log scale. Unlike FC it depends on the overall coupling strength;
    needs BOLD in the model's units (``scale="none"``) or at least a scale shared by both."""

    def _stat(self, bold, emp_sd):
        return torch.log(bold.std(-2) + 1e-12)


class BoldACFLoss(_MomentLoss):
    """``mean_i (acf_sim_i(lag) - acf_emp_i(lag))^2``: the per-region autocorrelation of the BOLD
    at ``lag`` samples (default 1). White output noise lowers it while the hemodynamic signal is
    smooth, so it separates the output-noise std from the signal amplitude (which the BOLD
    variance alone confounds with the coupling)."""

    def __init__(self, normalize: str | None = None, blocks: int = 4, lag: int = 1):
        super().__init__(normalize, blocks)
        if lag < 1:
            raise ValueError(f"lag: expected >= 1, got {lag}")
        self.lag = int(lag)

    def _stat(self, bold, emp_sd):
        x = bold - bold.mean(-2, keepdim=True)
        k = self.lag
        return (x[..., k:, :] * x[..., :-k, :]).mean(-2) / ((x * x).mean(-2) + 1e-30)


class FCMSELoss(_MomentLoss):
    """``mean_(i>j) (FC_sim_ij - FC_emp_ij)^2`` over the lower triangles: unlike the correlation
    of the FC patterns it sees the FC's magnitude (optionally normalised, see :class:`_MomentLoss`)."""

    def _stat(self, bold, emp_sd):
        return lower_tri(fc_matrix(bold))


class EntropyLoss(LossTerm):
    """``mean_i mean_t [E ln E + (1-E) ln(1-E) + 0.5 I ln I + 0.5 (1-I) ln(1-I)]`` over every
    recorded step (negative entropy: minimising it keeps E and I away from 0 and 1)."""
    needs_states = True
    eps = 1e-12

    def _xlogx(self, v):
        return v * torch.log(v.clamp_min(self.eps))

    def forward(self, x):
        if x.E is None or x.I is None or x.E.shape[1] == 0:
            raise ValueError("EntropyLoss: needs E and I recorded every step (record_every=1)")
        E, I = x.E, x.I
        h = self._xlogx(E) + self._xlogx(1 - E) + 0.5 * self._xlogx(I) + 0.5 * self._xlogx(1 - I)
        return h.mean(dim=(-2, -1))


class BifurcationLoss(LossTerm):
    """``(ca' g_IE'^2 - cb' g_IE' + cc' - g_EI')^2`` with learnable ca, cb, cc (``[B]`` each,
    init 0.5, 20, 10; ``c' = 0.001 + relu(c)``) and the model's g_IE, g_EI in natural units
    (``0.001 + relu(p)`` under griffiths2022). Regional parameters: mean over regions."""

    def __init__(self, batch: int = 1, ca: float = 0.5, cb: float = 20.0, cc: float = 10.0,
                 learnable: bool = True, dtype=torch.float32):
        super().__init__()
        for name, v in (("ca", ca), ("cb", cb), ("cc", cc)):
            t = torch.full((batch,), float(v), dtype=dtype)
            if learnable:
                setattr(self, name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)

    def forward(self, x):
        gIE, gEI = x.model.value("g_IE"), x.model.value("g_EI")
        ca, cb, cc = (_positive(c) for c in (self.ca, self.cb, self.cc))
        if gIE.dim() == 2 or gEI.dim() == 2:
            ca, cb, cc = ca[:, None], cb[:, None], cc[:, None]
            gIE = gIE if gIE.dim() == 2 else gIE[:, None]
            gEI = gEI if gEI.dim() == 2 else gEI[:, None]
            return ((ca * gIE ** 2 - cb * gIE + cc - gEI) ** 2).mean(-1)
        return (ca * gIE ** 2 - cb * gIE + cc - gEI) ** 2


class GaussianPrior(LossTerm):
    """A prior on one model parameter with learnable mean ``m`` and precision ``v`` (``[B]``).

    ``form="griffiths2022"`` (the paper): ``v' (relu(p) - relu(m))^2 + log v'`` with p the
    unconstrained parameter and ``v' = 0.001 + relu(v)``.
    ``form="gaussian"``: ``0.5 v' (value - m)^2 - 0.5 log v'`` (a Gaussian negative log density).
    Regional parameters: the squared distance is averaged over regions.
    """

    def __init__(self, param: str, batch: int = 1, mean: float | torch.Tensor = 0.0,
                 std: float | torch.Tensor = 0.1, *, form: str = "griffiths2022",
                 learnable: bool = True, dtype=torch.float32):
        super().__init__()
        if form not in ("griffiths2022", "gaussian"):
            raise ValueError(f"GaussianPrior.form: expected 'griffiths2022' or 'gaussian', got {form!r}")
        self.param, self.form = param, form
        m = torch.as_tensor(mean, dtype=dtype).expand(batch).clone()
        v = (1.0 / torch.as_tensor(std, dtype=dtype)).expand(batch).clone()
        if learnable:
            self.mean, self.precision = nn.Parameter(m), nn.Parameter(v)
        else:
            self.register_buffer("mean", m)
            self.register_buffer("precision", v)

    def forward(self, x):
        v = _positive(self.precision)
        if self.form == "griffiths2022":
            p = torch.relu(x.model.raw(self.param))
            m = torch.relu(self.mean)
        else:
            p = x.model.value(self.param)
            m = self.mean
        d2 = (p - m[:, None]) ** 2 if p.dim() == 2 else (p - m) ** 2
        if d2.dim() == 2:
            d2 = d2.mean(-1)
        if self.form == "griffiths2022":
            return v * d2 + torch.log(v)
        return 0.5 * v * d2 - 0.5 * torch.log(v)


class Objective(nn.Module):
    """A weighted sum of named loss terms.

    ``Objective({"fc": (FCCorrelationLoss(), 1.0), "prior_g": (GaussianPrior("g", B, 80), 1.0)})``
    ``forward(x)`` returns ``(total [B], {name: weighted term [B]})``.
    """

    def __init__(self, terms: Mapping[str, tuple]):
        super().__init__()
        if not terms:
            raise ValueError("Objective: expected at least one term")
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        for name, spec in terms.items():
            term, weight = spec if isinstance(spec, tuple) else (spec, 1.0)
            if not isinstance(term, LossTerm):
                raise TypeError(f"Objective: term {name!r} must be a nmmfit LossTerm, got {type(term).__name__}")
            self.terms[name] = term
            self.weights[name] = float(weight)

    @property
    def needs_states(self) -> bool:
        return any(t.needs_states and self.weights[n] != 0 for n, t in self.terms.items())

    def forward(self, x: LossInput):
        parts = {}
        total = None
        for name, term in self.terms.items():
            w = self.weights[name]
            if w == 0:
                continue
            val = w * term(x)
            parts[name] = val
            total = val if total is None else total + val
        return total, parts

    def hyperparameters(self) -> dict:
        """Current values of the terms' learnable hyper-parameters, ``"term.name" -> [B]``."""
        return {f"{tn}.{pn}": p.detach().clone() for tn, t in self.terms.items()
                for pn, p in t.named_parameters()}


def griffiths2022_objective(model, *, g_mean=None, g_std=0.1, g_EE_mean=None, g_EE_std=0.1,
                            weights: Mapping | None = None, prior_form: str = "griffiths2022") -> Objective:
    """The paper's objective for ``model`` (an RWW with B models).

    The prior means default to the model's initial (natural-unit) g and g_EE, the precisions to
    ``1/std`` (the paper: std 0.1 for both). ``weights`` overrides term weights (names: ``fc``,
    ``bifurcation``, ``entropy``, ``prior_g``, ``prior_g_EE``; 0 removes a term).
    """
    B, dt = model.B, model.dtype_

    def init_mean(name, given):
        if given is not None:
            return torch.as_tensor(given, dtype=dt)
        v = model.value(name).detach()
        return v.mean(-1) if v.dim() == 2 else v

    terms = {
        "fc": (FCCorrelationLoss(), 1.0),
        "bifurcation": (BifurcationLoss(B, dtype=dt), 5.0),
        "entropy": (EntropyLoss(), 0.1),
        "prior_g": (GaussianPrior("g", B, init_mean("g", g_mean), g_std, form=prior_form, dtype=dt), 1.0),
        "prior_g_EE": (GaussianPrior("g_EE", B, init_mean("g_EE", g_EE_mean), g_EE_std, form=prior_form, dtype=dt), 1.0),
    }
    for name, w in (weights or {}).items():
        if name not in terms:
            raise ValueError(f"weights: unknown term {name!r}; expected one of {sorted(terms)}")
        terms[name] = (terms[name][0], float(w))
    return Objective(terms)


def moments_objective(*, blocks: int = 10, weights: Mapping | None = None) -> Objective:
    """Summary statistics of the BOLD, each normalised by its sampling variance estimated from
    the data (``blocks`` blocks; see :class:`BoldMeanLoss`): the FC matrix (``fc``,
    :class:`FCMSELoss`), the per-region mean (``mean``), log standard deviation (``logsd``) and
    lag-1 autocorrelation (``acf``). A simulated-moments objective for full-session fits of data
    in the model's units (``scale="none"``), e.g. the synthetic recovery experiment: unlike the
    FC correlation it sees the coupling strength (amplitude, FC magnitude), the local excitation
    (BOLD level) and the output noise (autocorrelation). ``weights`` overrides term weights
    (1 each; 0 removes a term)."""
    terms = {"fc": (FCMSELoss("blocks", blocks), 1.0), "mean": (BoldMeanLoss("blocks", blocks), 1.0),
             "logsd": (BoldLogSDLoss("blocks", blocks), 1.0), "acf": (BoldACFLoss("blocks", blocks), 1.0)}
    for name, w in (weights or {}).items():
        if name not in terms:
            raise ValueError(f"weights: unknown term {name!r}; expected one of {sorted(terms)}")
        terms[name] = (terms[name][0], float(w))
    terms = {k: v for k, v in terms.items() if v[1] != 0}
    return Objective(terms)


def default_objective(model) -> Objective:
    """The paper's objective for griffiths2022 models; FC correlation + FC RMSE for others."""
    if model.preset.name == "griffiths2022":
        return griffiths2022_objective(model)
    return Objective({"fc": (FCCorrelationLoss(), 1.0), "fc_rmse": (FCRMSELoss(), 1.0)})


__all__ = ["LossInput", "LossTerm", "FCCorrelationLoss", "FCRMSELoss", "BoldMSELoss", "BoldMeanLoss",
           "BoldLogSDLoss", "BoldACFLoss", "FCMSELoss", "EntropyLoss",
           "BifurcationLoss", "GaussianPrior", "Objective", "griffiths2022_objective", "moments_objective",
           "default_objective"]
