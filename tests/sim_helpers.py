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


def make_input(B, n_steps, N, u_every, dtype=torch.float64, device="cpu", shared=False, seed=3):
    """An external input u [B, ceil(n_steps / u_every), N] (or [n_u, N] when shared) of O(0.1)."""
    n_u = -(-n_steps // u_every)
    g = torch.Generator().manual_seed(seed)
    u = 0.1 * torch.randn((n_u, N) if shared else (B, n_u, N), generator=g, dtype=torch.float64)
    return u.to(dtype=dtype, device=device)


def grads_of(fn, W, params, state0, n_steps, kw):
    """Gradients of a random-cotangent loss: [W, state0, *params in PARAM_NAMES order] (+ [u] when kw has u)."""
    W = W.clone().requires_grad_()
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    state0 = state0.clone().requires_grad_()
    kw = dict(kw)
    if kw.get("u") is not None:
        kw["u"] = kw["u"].clone().requires_grad_()
    random_cotangents(fn(W, params, state0, n_steps, **kw)).backward()
    return [W.grad, state0.grad] + [params[k].grad for k in nmmfit.PARAM_NAMES] + (
        [kw["u"].grad] if kw.get("u") is not None else [])


def gradcheck_simulate(preset, device="cpu"):
    """float64 gradcheck of nmmfit.simulate through every output and every input (W, state0, all
    parameters, regional) on a small problem on ``device``."""
    W, params, state0 = make_problem(preset, 2, 3, torch.float64, device=device)
    names = list(nmmfit.PARAM_NAMES)

    def f(W, state0, *ps):
        out = nmmfit.simulate(W, dict(zip(names, ps)), state0, 12,
                              **run_kw(preset, steps_per_sample=3, record_every=2, checkpoint_every=5))
        return out.bold, out.E, out.I, out.state

    inputs = [W.requires_grad_(), state0.requires_grad_()] + [params[k].requires_grad_() for k in names]
    return torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-6, rtol=1e-5)


def assert_gradients_match_reference(preset, batched_W, regional, device="cpu", u_every=None, shared_u=False):
    """Every gradient of nmmfit.simulate on ``device`` (W, state0, each parameter, and the external
    input u when ``u_every`` is given) equals autograd through the reference on the CPU to 1e-9
    (float64), for a loss with random cotangents."""
    W, params, state0 = make_problem(preset, 3, 5, torch.float64, batched_W=batched_W, regional=regional,
                                     device=device)
    n_steps = 43 if preset == "griffiths2022" else 83
    kw = run_kw(preset)
    if u_every is not None:
        kw.update(u=make_input(3, n_steps, 5, u_every, device=device, shared=shared_u), u_every=u_every)
    ours = grads_of(nmmfit.simulate, W, params, state0, n_steps, kw)
    kw_cpu = {k: (to(v, "cpu") if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    ref = grads_of(nmmfit.simulate_ref, to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), n_steps, kw_cpu)
    assert len(ours) == len(ref) == 8 + (u_every is not None)
    for name, a, b in zip(["W", "state0", *nmmfit.PARAM_NAMES, "u"], ours, ref):
        assert a.device.type == torch.device(device).type and a.shape == b.shape, name
        torch.testing.assert_close(a.cpu(), b, rtol=1e-9, atol=1e-9 * b.abs().max().item(), msg=name)
