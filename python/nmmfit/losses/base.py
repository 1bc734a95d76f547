"""The loss-term protocol and the weighted objective.

Every term maps a :class:`LossInput` to a per-model loss ``[B]`` (one value per batch member); an
:class:`Objective` is a weighted sum of named terms. The fitting loop sums the ``[B]`` total for
the backward pass, so the B models get independent gradients. Terms with learnable
hyper-parameters are ``nn.Module`` s whose parameters the optimizer updates with the model's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn


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


class LossTerm(nn.Module):
    """Base class: ``forward(x: LossInput) -> [B]``. ``needs_states``: needs E, I every step;
    ``compares_data``: compares the simulation with the empirical window ``x.emp`` (a stage that
    fits a static target instead leaves such terms out: :class:`nmmfit.params.schemes.Stage`)."""
    needs_states = False
    compares_data = False

    def forward(self, x: LossInput) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


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


def with_weights(terms: dict, weights: Mapping | None) -> dict:
    """``terms`` (name -> (term, weight)) with ``weights`` overriding; unknown names are an error."""
    terms = dict(terms)
    for name, w in (weights or {}).items():
        if name not in terms:
            raise ValueError(f"weights: unknown term {name!r}; expected one of {sorted(terms)}")
        terms[name] = (terms[name][0], float(w))
    return terms


def default_objective(model) -> Objective:
    """The default objective of ``model``'s fitting scheme (``model.scheme.objective``)."""
    return model.scheme.objective(model)


__all__ = ["LossInput", "LossTerm", "Objective", "with_weights", "default_objective"]
