"""Problem builders and gradient helpers shared by the op tests of every device (test_ops, test_cuda)."""
import torch

import nmmfit
from nmmfit._inputs import REST_STATE


def make_problem(preset, B, N, dtype, batched_W=False, regional=True, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand((B, N, N) if batched_W else (N, N), generator=g, dtype=torch.float64)
    W = (W + W.transpose(-1, -2)) / 2
    params = {}
    for k, v in nmmfit.get_preset(preset).defaults.items():
        jitter = 0.1 * torch.rand((B, N) if regional else (B,), generator=g, dtype=torch.float64)
        params[k] = (v * (1 + jitter)).to(dtype=dtype, device=device)
    state0 = torch.tensor(REST_STATE, dtype=torch.float64)[None, :, None] + 0.05 * torch.rand(B, 6, N, generator=g, dtype=torch.float64)
    return W.to(dtype=dtype, device=device), params, state0.to(dtype=dtype, device=device)


def to(x, device):
    if isinstance(x, dict):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)


def run_kw(preset, **kw):
    base = dict(preset=preset, steps_per_sample=7, record_every=3, seed=11, step_offset=4, checkpoint_every=10)
    base.update(kw)
    return base


def rel_err(a, b):
    a, b = a.double().cpu(), b.double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def random_cotangents(outputs, seed=5):
    g = torch.Generator().manual_seed(seed)
    return sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype).to(o.device)).sum() for o in outputs)


def grads_of(fn, W, params, state0, n_steps, kw):
    W = W.clone().requires_grad_()
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    state0 = state0.clone().requires_grad_()
    random_cotangents(fn(W, params, state0, n_steps, **kw)).backward()
    return [W.grad, state0.grad] + [params[k].grad for k in nmmfit.PARAM_NAMES]
