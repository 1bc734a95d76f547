"""Composable loss terms and the paper's objective.

Every term maps a :class:`LossInput` to a per-model loss ``[B]`` (one value per batch member);
an :class:`Objective` is a weighted sum of named terms. The fitting loop sums the ``[B]`` total
for the backward pass, so the B models get independent gradients. Terms with learnable
hyper-parameters (the bifurcation constraint's ca, cb, cc; the priors' means and precisions) are
``nn.Module`` s whose parameters the optimizer updates together with the model's.

The paper's objective (docs/MODEL.md, "The fitting objective"; :func:`griffiths2022_objective`)::

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

from typing import Mapping

import torch
from torch import nn

from ..stats.fc import fc_matrix, lower_tri, pearson
from .base import LossTerm, Objective, with_weights


def _positive(p: torch.Tensor) -> torch.Tensor:
    return 0.001 + torch.relu(p)


class FCCorrelationLoss(LossTerm):
    """``-log(0.5 + 0.5 r)``, r = Pearson correlation of the lower triangles (k=-1) of the
    simulated and empirical FC, both computed over the samples given (the window)."""
    compares_data = True

    def forward(self, x):
        r = pearson(lower_tri(fc_matrix(x.sim)), lower_tri(fc_matrix(x.emp)))
        return -torch.log(0.5 + 0.5 * r)


class FCRMSELoss(LossTerm):
    """Root mean square difference of the FC lower triangles."""
    compares_data = True

    def forward(self, x):
        d = lower_tri(fc_matrix(x.sim)) - lower_tri(fc_matrix(x.emp))
        return torch.sqrt((d * d).mean(-1) + 1e-30)


class BoldMSELoss(LossTerm):
    """Mean squared difference of the BOLD time series."""
    compares_data = True

    def forward(self, x):
        return ((x.sim - x.emp) ** 2).mean(dim=(-2, -1))


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
    return Objective(with_weights(terms, weights))
