"""Adam with ``torch.optim.Adam``'s arithmetic and state format, without its compiler import.

Every method of ``torch.optim.Optimizer`` (construction included) imports torch's compiler stack
(``torch._dynamo``) on first use, to guard against tracing: 1.3 s of CPU on this project's machine
and 5-7 s of wall time under load, a third of a whole fit of the paper's scheme. A fit runs
eagerly, so it steps with this class instead: the update of torch's single-tensor Adam (what torch
runs on CPU tensors; no weight decay, amsgrad or maximize), the same float operations in the same
order, so a fit is bitwise the one ``torch.optim.Adam`` gives (tests/test_fit_speed.py), and
``state_dict()`` / ``load_state_dict()`` in torch's format, so checkpoints written with either
continue with either.

Imports: torch only.
"""
from __future__ import annotations

import torch

_GROUP_SETTINGS = ("lr", "betas", "eps")
# torch.optim.Adam's other settings, at the values whose update this class implements; written into
# state_dict() so that torch loads it, and checked when a torch state is loaded.
_TORCH_SETTINGS = dict(weight_decay=0.0, amsgrad=False, maximize=False, foreach=None, capturable=False,
                       differentiable=False, fused=None, decoupled_weight_decay=False)
_UPDATE_SETTINGS = ("weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


class Adam:
    """Adam over parameter groups (dicts with ``params`` and optionally ``lr``, ``betas``, ``eps``
    and any other keys, e.g. ``name``, kept as given), defaults from the arguments.

    ``state[p]``: ``step`` (a float32 scalar tensor, as torch keeps it), ``exp_avg`` and
    ``exp_avg_sq`` (shaped as ``p``)."""

    def __init__(self, param_groups: list[dict], lr: float, betas: tuple = (0.9, 0.999), eps: float = 1e-8):
        self.defaults = dict(lr=float(lr), betas=tuple(betas), eps=float(eps))
        self.param_groups = [{**self.defaults, **g, "params": list(g["params"])} for g in param_groups]
        self.state: dict = {}

    def _params(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.zero_()

    def _state(self, p: torch.Tensor) -> dict:
        if p not in self.state:
            self.state[p] = dict(step=torch.tensor(0.0, dtype=torch.float32),
                                 exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                 exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
        return self.state[p]

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient: torch's ``_single_tensor_adam``, each
        operation applied to all the parameters that share betas and eps at once (a fit has one
        group per parameter, each with its own lr). ``torch._foreach_*`` loops over the same
        per-tensor kernels on the CPU, so the numbers are those of one tensor at a time; the step
        counts are read in one transfer instead of one ``.item()`` per parameter."""
        buckets: dict = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    buckets.setdefault((tuple(group["betas"]), group["eps"]), []).append((p, group["lr"]))
        for ((beta1, beta2), eps), members in buckets.items():
            params = [p for p, _ in members]
            states = [self._state(p) for p in params]
            grads = [p.grad for p in params]
            steps, avgs, avg_sqs = ([s[k] for s in states] for k in ("step", "exp_avg", "exp_avg_sq"))
            torch._foreach_add_(steps, 1)
            torch._foreach_lerp_(avgs, grads, 1 - beta1)
            torch._foreach_mul_(avg_sqs, beta2)
            torch._foreach_addcmul_(avg_sqs, grads, grads, value=1 - beta2)
            counts = torch.stack(steps).tolist()
            denoms = torch._foreach_sqrt(avg_sqs)
            torch._foreach_div_(denoms, [(1 - beta2 ** n) ** 0.5 for n in counts])
            torch._foreach_add_(denoms, eps)
            torch._foreach_addcdiv_(params, avgs, denoms,
                                    [-(lr / (1 - beta1 ** n)) for (_, lr), n in zip(members, counts)])

    def state_dict(self) -> dict:
        """torch's layout: ``state`` by parameter index (in group order), ``param_groups`` with the
        indices in place of the tensors."""
        index = {id(p): i for i, p in enumerate(self._params())}
        groups, start = [], 0
        for g in self.param_groups:
            groups.append({**_TORCH_SETTINGS, **g, "params": list(range(start, start + len(g["params"])))})
            start += len(g["params"])
        state = {index[id(p)]: dict(s) for p, s in self.state.items()}
        return dict(state=state, param_groups=groups)

    def load_state_dict(self, state_dict: dict) -> None:
        """The moments and steps of a ``state_dict()`` (this class's or ``torch.optim.Adam``'s) with
        the same groups of the same sizes; the groups' learning rates, betas and eps are taken from it."""
        saved = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in saved] != sizes:
            raise ValueError(f"optimizer state: expected {len(sizes)} parameter groups of sizes {sizes}, got "
                             f"{[len(g['params']) for g in saved]}")
        for g, sg in zip(self.param_groups, saved):
            other = {k: sg[k] for k in _UPDATE_SETTINGS if k in sg and sg[k] != _TORCH_SETTINGS[k]}
            if other:
                raise ValueError(f"optimizer state: written by an Adam with {other}; this one implements "
                                 f"{ {k: _TORCH_SETTINGS[k] for k in other} } only")
            g.update({k: tuple(sg[k]) if k == "betas" else sg[k] for k in _GROUP_SETTINGS})
        by_index = {i: p for g, sg in zip(self.param_groups, saved) for i, p in zip(sg["params"], g["params"])}
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[i]
            self.state[p] = dict(step=s["step"].detach().clone().to(torch.float32),
                                 exp_avg=s["exp_avg"].detach().to(p.dtype, copy=True),
                                 exp_avg_sq=s["exp_avg_sq"].detach().to(p.dtype, copy=True))


__all__ = ["Adam"]
