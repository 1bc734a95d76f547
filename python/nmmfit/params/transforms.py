"""Transforms between a parameter's unconstrained value (what the optimizer moves) and its value
in natural units (what the dynamics use). A transform is data: a scheme maps names to instances."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Identity:
    """``value = raw``."""

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def inverse(self, name: str, value: torch.Tensor) -> torch.Tensor:
        return value

    def describe(self) -> str:
        return "identity"


@dataclass(frozen=True)
class OffsetRelu:
    """``value = offset + relu(raw)`` (the paper's transform: a floor with no gradient below it)."""
    offset: float

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.offset + torch.relu(raw)

    def inverse(self, name: str, value: torch.Tensor) -> torch.Tensor:
        if bool((value < self.offset * (1 - 1e-6)).any()):
            raise ValueError(f"init[{name!r}]: the transform {self.describe()} cannot give values below "
                             f"{self.offset}; got min {float(value.min()):g}")
        return (value - self.offset).clamp_min(0.0)

    def describe(self) -> str:
        return f"{self.offset} + relu(p)"


@dataclass(frozen=True)
class LogPositive:
    """``value = exp(raw)``: strictly positive, scale-free steps (a 1% step is the same at any size)."""

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.exp(raw)

    def inverse(self, name: str, value: torch.Tensor) -> torch.Tensor:
        if bool((value <= 0).any()):
            raise ValueError(f"init[{name!r}]: the transform exp(p) needs positive values; got min "
                             f"{float(value.min()):g}")
        return torch.log(value)

    def describe(self) -> str:
        return "exp(p)"


__all__ = ["Identity", "OffsetRelu", "LogPositive"]
