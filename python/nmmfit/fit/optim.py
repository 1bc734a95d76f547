"""Optimizers of a fit: Adam parameter groups with per-name learning rates, a cosine decay, and a
scaled L-BFGS for deterministic objectives. Adam is :class:`.adam.Adam` (torch's arithmetic, without
torch.optim's import of the compiler stack); L-BFGS is torch's. Imports: torch, .adam."""
from __future__ import annotations

import numpy as np
import torch

from .adam import Adam


def _param_groups(model, objective, lr: float, lr_scale: dict) -> list:
    """Adam parameter groups: one per model parameter (``g``, ..., ``gains``) and per loss term,
    each with ``lr * lr_scale.get(name, 1)``."""
    groups, known = [], set()
    for name, p in model.named_parameters():
        key = name[len("raw_"):] if name.startswith("raw_") else name
        known.add(key)
        groups.append(dict(params=[p], lr=lr * float(lr_scale.get(key, 1.0)), name=key))
    for tname, term in objective.terms.items():
        ps = list(term.parameters())
        known.add(tname)
        if ps:
            groups.append(dict(params=ps, lr=lr * float(lr_scale.get(tname, 1.0)), name=tname))
    unknown = set(lr_scale) - known
    if unknown:
        raise ValueError(f"lr_scale: unknown names {sorted(unknown)}; expected fitted parameters or loss terms "
                         f"{sorted(known)}")
    return groups


class _ScaledLBFGS:
    """L-BFGS (strong-Wolfe line search) over the model's and objective's parameters divided by
    per-parameter scales (a diagonal preconditioner: g ~ 100 and g_IE ~ 0.4 become O(1) numbers).
    One :meth:`torch.optim.LBFGS.step` per update does one quasi-Newton iteration (its line search
    may take up to ``max_eval`` evaluations; torch's default for max_iter=1 would allow none)."""

    def __init__(self, groups: list, lr: float, history_size: int = 20, max_eval: int = 25):
        self.pairs = [(p, float(g["scale"])) for g in groups for p in g["params"]]
        self.proxies = [(p.detach() / s).clone().requires_grad_(True) for p, s in self.pairs]
        self.opt = torch.optim.LBFGS(self.proxies, lr=lr, max_iter=1, max_eval=max_eval, history_size=history_size,
                                     line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-12)

    @torch.no_grad()
    def to_model(self):
        for (p, s), u in zip(self.pairs, self.proxies):
            p.copy_(u * s)

    def grads_from_model(self):
        for (p, s), u in zip(self.pairs, self.proxies):
            u.grad = torch.zeros_like(u) if p.grad is None else p.grad.detach() * s

    @torch.no_grad()
    def from_model(self):
        for (p, s), u in zip(self.pairs, self.proxies):
            u.copy_(p / s)


def make_optimizer(model, objective, cfg):
    """``(adam, lbfgs or None)``: Adam always holds the parameter groups (names and learning
    rates); with ``cfg.optimizer == "lbfgs"`` the L-BFGS proxy does the steps."""
    adam = Adam(_param_groups(model, objective, cfg.lr, dict(cfg.lr_scale)), lr=cfg.lr, eps=cfg.eps, betas=cfg.betas)
    lbfgs = None
    if cfg.optimizer == "lbfgs":
        lbfgs = _ScaledLBFGS([dict(params=g["params"], scale=g["lr"] / cfg.lr) for g in adam.param_groups], lr=cfg.lr)
    return adam, lbfgs


class CosineLR:
    """Learning rates decayed (cosine, per update) from their start to ``lr_final`` times it by
    the last of ``total_updates``; ``lr_final == 1`` leaves them constant (the paper)."""

    def __init__(self, optimizer, lr_final: float, total_updates: int):
        self.optimizer, self.lr_final, self.total = optimizer, lr_final, total_updates
        self.base = [g["lr"] for g in optimizer.param_groups]

    def set(self, u: int):
        if self.lr_final == 1.0:
            return
        T = self.total
        f = self.lr_final + (1 - self.lr_final) * 0.5 * (1 + np.cos(np.pi * min(u, T - 1) / max(T - 1, 1)))
        for g, b0 in zip(self.optimizer.param_groups, self.base):
            g["lr"] = b0 * f


__all__ = ["make_optimizer", "CosineLR"]
