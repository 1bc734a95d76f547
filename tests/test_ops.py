"""The compiled CPU ops against the pure-PyTorch reference: forward, gradients, opcheck, compile."""
import pytest
import torch

import nmmfit
from nmmfit._inputs import prepare_inputs
import sim_helpers
from sim_helpers import grads_of, make_problem, rel_err, run_kw

pytestmark = pytest.mark.skipif(not nmmfit.HAS_EXTENSION, reason="compiled extension not built")

PRESETS = ["griffiths2022", "deco2014"]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("B,N,n_steps,K", [(1, 5, 7, 10), (3, 7, 30, 10), (3, 7, 31, 10), (3, 7, 29, 10), (2, 1, 20, 4)])
def test_forward_matches_reference_float64(preset, B, N, n_steps, K):
    W, params, state0 = make_problem(preset, B, N, torch.float64)
    kw = run_kw(preset, checkpoint_every=K)
    out = nmmfit.simulate(W, params, state0, n_steps, **kw)
    ref = nmmfit.simulate_ref(W, params, state0, n_steps, **kw)
    for name, a, b in zip(out._fields, out, ref):
        assert a.shape == b.shape, name
        if b.numel():
            assert rel_err(a, b) < 1e-12, name


@pytest.mark.parametrize("preset", PRESETS)
def test_forward_float32_within_reference_own_error(preset):
    W, params, state0 = make_problem(preset, 3, 9, torch.float64)
    kw = run_kw(preset)
    exact = nmmfit.simulate_ref(W, params, state0, 60, **kw)
    f32 = lambda d: {k: v.float() for k, v in d.items()}
    ref32 = nmmfit.simulate_ref(W.float(), f32(params), state0.float(), 60, **kw)
    out32 = nmmfit.simulate(W.float(), f32(params), state0.float(), 60, **kw)
    for name, a, r, e in zip(out32._fields, out32, ref32, exact):
        ref_err = rel_err(r.double(), e)
        assert rel_err(a.double(), e) <= 10 * ref_err + 1e-6, name


@pytest.mark.parametrize("preset", PRESETS)
def test_shared_and_batched_W_and_global_params(preset):
    W, params, state0 = make_problem(preset, 3, 6, torch.float64, regional=False)
    kw = run_kw(preset)
    a = nmmfit.simulate(W, params, state0, 25, **kw)
    b = nmmfit.simulate(W.expand(3, 6, 6).contiguous(), params, state0, 25, **kw)
    r = nmmfit.simulate_ref(W, params, state0, 25, **kw)
    for x, y, z in zip(a, b, r):
        torch.testing.assert_close(x, y, rtol=1e-13, atol=1e-15)
        torch.testing.assert_close(x, z, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("preset", PRESETS)
def test_continuation_equals_one_long_run(preset):
    W, params, state0 = make_problem(preset, 2, 5, torch.float64)
    kw = run_kw(preset, step_offset=0, steps_per_sample=5, record_every=5)
    full = nmmfit.simulate(W, params, state0, 40, **kw)
    first = nmmfit.simulate(W, params, state0, 20, **kw)
    second = nmmfit.simulate(W, params, first.state, 20, **{**kw, "step_offset": 20})
    torch.testing.assert_close(torch.cat([first.bold, second.bold], 1), full.bold, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(second.state, full.state, rtol=1e-13, atol=1e-15)


def test_batch_equals_single_runs_with_matching_streams():
    W, params, state0 = make_problem("griffiths2022", 3, 5, torch.float64)
    kw = run_kw("griffiths2022")
    batch = nmmfit.simulate(W, params, state0, 30, **kw)
    for b in range(3):
        one = nmmfit.simulate(W, {k: v[b:b + 1] for k, v in params.items()}, state0[b:b + 1], 30,
                              stream=torch.tensor([b]), **kw)
        torch.testing.assert_close(one.bold, batch.bold[b:b + 1], rtol=0, atol=0)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
@pytest.mark.parametrize("regional", [False, True])
def test_gradients_match_autograd_through_reference(preset, batched_W, regional):
    sim_helpers.assert_gradients_match_reference(preset, batched_W, regional)


@pytest.mark.parametrize("preset", PRESETS)
def test_gradients_without_noise_and_with_T_below_K(preset):
    W, params, state0 = make_problem(preset, 2, 4, torch.float64)
    kw = run_kw(preset, noise=False, checkpoint_every=50)
    ours = grads_of(nmmfit.simulate, W, params, state0, 21, kw)
    ref = grads_of(nmmfit.simulate_ref, W, params, state0, 21, kw)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * b.abs().max().item())


@pytest.mark.parametrize("preset", PRESETS)
def test_gradcheck_float64(preset):
    assert sim_helpers.gradcheck_simulate(preset)


def test_checkpoint_interval_does_not_change_results():
    W, params, state0 = make_problem("deco2014", 2, 5, torch.float64)
    res = [grads_of(nmmfit.simulate, W, params, state0, 50, run_kw("deco2014", checkpoint_every=K)) for K in (1, 7, 50, 200)]
    for other in res[1:]:
        for a, b in zip(res[0], other):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("u_every,shared_u", [(None, False), (1, False), (4, True)])
def test_external_input_forward_and_gradients_match_reference(preset, u_every, shared_u):
    """u [B, n_u, N] (or shared [n_u, N]) held for u_every steps (default steps_per_sample; 4 does
    not divide n_steps): outputs and every gradient, dL/du included, as the reference's."""
    W, params, state0 = make_problem(preset, 3, 5, torch.float64)
    n_steps = 43 if preset == "griffiths2022" else 83
    kw = run_kw(preset, u_every=u_every)
    kw["u"] = sim_helpers.make_input(3, n_steps, 5, u_every or kw["steps_per_sample"], shared=shared_u)
    for a, b in zip(nmmfit.simulate(W, params, state0, n_steps, **kw), nmmfit.simulate_ref(W, params, state0, n_steps, **kw)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    without = nmmfit.simulate(W, params, state0, n_steps, **run_kw(preset))
    assert (nmmfit.simulate(W, params, state0, n_steps, **kw).state - without.state).abs().max() > 1e-8   # u acts
    sim_helpers.assert_gradients_match_reference(preset, False, True, u_every=u_every or 7, shared_u=shared_u)


def test_external_input_gradcheck_and_opcheck():
    W, params, state0 = make_problem("griffiths2022", 2, 3, torch.float64)
    kw = run_kw("griffiths2022", steps_per_sample=3, record_every=2, checkpoint_every=5, u_every=2)
    u = sim_helpers.make_input(2, 12, 3, 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda u: tuple(nmmfit.simulate(W, params, state0, 12, u=u, **kw)), (u,),
                                    eps=1e-7, atol=1e-6, rtol=1e-5)
    args = op_args("griffiths2022")
    u_op = sim_helpers.make_input(2, args[6], 3, 5).requires_grad_()
    torch.library.opcheck(torch.ops.nmmfit.simulate.default, (*args, u_op, 5))


@pytest.mark.parametrize("u,u_every,match", [
    (torch.zeros(2, 3, 4), None, r"u: expected shape \[B, 2, 4\]"),      # n_steps=10, u_every 7 -> 2 rows
    (torch.zeros(2, 4, dtype=torch.float64), None, "u: expected dtype"),
    (torch.zeros(2, 4), 0, "u_every"),
    (torch.full((2, 4), float("nan")), None, "u: expected finite"),
    (torch.zeros(3, 2, 4), None, "batch size"),
])
def test_external_input_bad_values_raise_clearly(u, u_every, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nmmfit.simulate(torch.ones(4, 4), None, None, 10, steps_per_sample=7, batch=2, u=u, u_every=u_every)
    args = list(op_args("deco2014"))
    with pytest.raises(RuntimeError, match="u: expected shape"):
        torch.ops.nmmfit.simulate(*args, torch.zeros(2, 1, 3, dtype=torch.float64), 1)


def op_args(preset, dtype=torch.float64, n_steps=14, batched_W=False):
    W, params, state0 = make_problem(preset, 2, 3, dtype, batched_W=batched_W)
    inp = prepare_inputs(W, params, state0, n_steps, **run_kw(preset, steps_per_sample=3, record_every=2, checkpoint_every=5))
    return (inp.W.clone(), inp.params.contiguous().clone(), inp.state0.clone(), inp.stream, inp.seed, inp.step_offset,
            inp.n_steps, inp.steps_per_sample, inp.record_every, inp.checkpoint_every, inp.noise,
            inp.preset.switches(), inp.preset.scalars())


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
def test_opcheck_simulate(preset, batched_W):
    args = op_args(preset, batched_W=batched_W)
    for t in args[:3]:
        t.requires_grad_()
    torch.library.opcheck(torch.ops.nmmfit.simulate.default, args)


@pytest.mark.parametrize("preset", PRESETS)
def test_opcheck_simulate_backward(preset):
    args = op_args(preset)
    W, params, _, stream, *config = args
    bold, E, I, state, checkpoints = torch.ops.nmmfit.simulate(*args)
    g = torch.Generator().manual_seed(3)
    cot = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (bold, E, I, state)]
    torch.library.opcheck(torch.ops.nmmfit.simulate_backward.default,
                          (*cot, W, params, stream, checkpoints, *config, True))
    torch.library.opcheck(torch.ops.nmmfit.simulate_backward.default,
                          (cot[0], None, None, None, W, params, stream, checkpoints, *config, False))


def test_opcheck_noise():
    torch.library.opcheck(torch.ops.nmmfit.noise.default, (3, torch.arange(2), 4, 5, 7, torch.float32))


def test_noise_op_matches_reference_noise():
    from nmmfit.philox import noise_ref
    stream = torch.tensor([0, 5, 2**32 - 1])
    a = nmmfit.noise(2**40 + 3, stream, 7, 6, step_offset=2**33)
    b = noise_ref(2**40 + 3, stream, 7, 6, step_offset=2**33, dtype=torch.float64)
    torch.testing.assert_close(nmmfit.noise(2**40 + 3, stream, 7, 6, step_offset=2**33, dtype=torch.float64), b,
                               rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(a, b.float(), rtol=1e-5, atol=1e-5)


def test_torch_compile_loss_through_simulate():
    W, params, state0 = make_problem("griffiths2022", 2, 4, torch.float32)
    g = params["g"].clone().requires_grad_()

    def loss_fn(g):
        out = nmmfit.simulate(W, {**params, "g": g}, state0, 30, **run_kw("griffiths2022"))
        return out.bold.square().mean()

    compiled = torch.compile(loss_fn, backend="aot_eager", fullgraph=False)
    loss = compiled(g)
    loss.backward()
    g_ref = g.clone().detach().requires_grad_()
    loss_fn(g_ref).backward()
    torch.testing.assert_close(loss, loss_fn(g.detach()))
    torch.testing.assert_close(g.grad, g_ref.grad)


@pytest.mark.parametrize("B", [5, 18])  # one simulation per dL/dW chunk; chunks of one and two
def test_same_result_whatever_the_thread_count(B):
    W, params, state0 = make_problem("deco2014", 9, B, torch.float32)
    kw = run_kw("deco2014")
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append([nmmfit.simulate(W, params, state0, 40, **kw).bold] + grads_of(nmmfit.simulate, W, params, state0, 40, kw))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("preset", ["deco2014", "griffiths2022"])
@pytest.mark.parametrize("batched_W,with_u", [(False, False), (True, True)])
def test_pipelined_backward_of_one_simulation_is_the_serial_one(preset, batched_W, with_u):
    """B=1 on two threads: the segments' recompute and their adjoint run on one thread each. The
    gradients (dL/dW shared or own, every parameter, state0, u) equal one thread's bitwise, and the
    reference's (float64) to rounding."""
    W, params, state0 = make_problem(preset, 1, 9, torch.float64, batched_W=batched_W)
    kw = run_kw(preset, **({"u": sim_helpers.make_input(1, 90, 9, 7)} if with_u else {}))
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(grads_of(nmmfit.simulate, W, params, state0, 90, kw))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results):
        assert torch.equal(a, b)
    want = grads_of(nmmfit.simulate_ref, W, params, state0, 90, kw)
    for a, b in zip(results[1], want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_simulations_on_one_stream_step_together_with_the_noise_of_their_own_runs(dtype):
    """A shared W groups simulations, forward and backward (one thread: groups of four); neighbours on
    the same noise stream reuse one draw of the step's noise. Whatever the grouping, each simulation
    is bitwise its run alone: outputs, and the gradients of its parameters and initial state."""
    W, params, state0 = make_problem("deco2014", 8, 7, dtype)
    stream = torch.tensor([0, 0, 0, 3, 3, 0, 2, 2])
    kw = run_kw("deco2014", stream=stream)
    g = torch.Generator().manual_seed(5)
    cot = [torch.randn(o.shape, generator=g, dtype=dtype) for o in nmmfit.simulate(W, params, state0, 60, **kw)]

    def run(p, x0, rows, **kw_run):                     # outputs, and d(cotangents . outputs)/d(x0, p)
        x0 = x0.clone().requires_grad_()
        p = {k: v.clone().requires_grad_() for k, v in p.items()}
        out = nmmfit.simulate(W, p, x0, 60, **kw_run)
        sum((o * c[rows]).sum() for o, c in zip(out, cot)).backward()
        return out, [x0.grad] + [p[k].grad for k in nmmfit.PARAM_NAMES]

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        batch, batch_grads = run(params, state0, slice(None), **kw)
        for b in range(8):
            one = ({k: v[b:b + 1] for k, v in params.items()}, state0[b:b + 1])
            out, grads = run(*one, slice(b, b + 1), **run_kw("deco2014", stream=stream[b:b + 1]))
            for x, y in zip(list(batch) + batch_grads, list(out) + grads):
                assert torch.equal(x[b:b + 1], y)
    finally:
        torch.set_num_threads(before)
    other = nmmfit.simulate(W, {k: v[3:4] for k, v in params.items()}, state0[3:4], 60, **run_kw("deco2014"))
    assert not torch.equal(batch.E[3], other.E[0])                # on stream 0, not its own 3


@pytest.mark.parametrize("args,match", [
    (dict(W=torch.ones(2, 3)), "W"),
    (dict(params={"g": torch.ones(2, 5)}), r"params\['g'\]"),
    (dict(params={"gg": 1.0}), "params"),
    (dict(state0=torch.ones(6, 3)), "state0"),
    (dict(n_steps=0), "n_steps"),
    (dict(steps_per_sample=0), "steps_per_sample"),
    (dict(checkpoint_every=0), "checkpoint_every"),
    (dict(preset="nope"), "preset"),
    (dict(params={"g": float("nan")}), r"params\['g'\]"),
    (dict(W=-torch.ones(4, 4)), "W"),
])
def test_bad_input_raises_clear_error(args, match):
    kw = dict(W=torch.ones(4, 4), params=None, state0=None, n_steps=10)
    kw.update(args)
    with pytest.raises((ValueError, TypeError), match=match):
        nmmfit.simulate(kw.pop("W"), kw.pop("params"), kw.pop("state0"), kw.pop("n_steps"), **kw)


def test_op_checks_name_the_argument():
    args = list(op_args("deco2014"))
    args[2] = args[2][:, :5]
    with pytest.raises(RuntimeError, match="state0"):
        torch.ops.nmmfit.simulate(*args)
    args = list(op_args("deco2014"))
    args[11] = [0, 0, 0, 0, 0]
    with pytest.raises(RuntimeError, match="switches"):
        torch.ops.nmmfit.simulate(*args)


def test_cuda_tensors_without_cuda_build_raise_clearly():
    if nmmfit.build_info()["cuda"]:
        pytest.skip("extension built with CUDA")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            nmmfit.ops._require_kernel(torch.device("cuda"))


def test_nonfinite_gradient_warns_instead_of_passing_silently():
    # Un-normalised coupling with a large g is chaotic: the float32 adjoint over a long run overflows.
    W = torch.rand(80, 80, generator=torch.Generator().manual_seed(0))
    g = torch.full((1,), 20.0, requires_grad=True)
    out = nmmfit.simulate((W + W.T) / 2, {"g": g}, None, 18000, preset="griffiths2022", batch=1)
    with pytest.warns(RuntimeWarning, match="gradient of simulate"):
        out.bold.mean().backward()
    assert not torch.isfinite(g.grad).all()


# ---- torch.func and higher-order autograd -----------------------------------------------------------

def func_problem(batched_W=False):
    """A loss-free map (W, g) -> the last recorded E [2 * 2 * 3] of a tiny float64 run, for a simulator."""
    W, params, state0 = make_problem("griffiths2022", 2, 3, torch.float64, batched_W=batched_W)
    kw = run_kw("griffiths2022", steps_per_sample=3, record_every=2, checkpoint_every=5)

    def f(sim):
        return lambda W, g: sim(W, {**params, "g": g}, state0, 12, **kw).E[:, -2:].reshape(-1)
    return W, params["g"].clone(), f


@pytest.mark.parametrize("batched_W", [False, True])
def test_torch_func_grad_and_jacrev_match_reference(batched_W):
    W, g, f = func_problem(batched_W)
    ours = torch.func.jacrev(f(nmmfit.simulate), argnums=(0, 1))(W, g)
    ref = torch.func.jacrev(f(nmmfit.simulate_ref), argnums=(0, 1))(W, g)
    for a, b in zip(ours, ref):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    loss = lambda sim: (lambda W, g: f(sim)(W, g).square().sum())
    for a, b in zip(torch.func.grad(loss(nmmfit.simulate), argnums=(0, 1))(W, g),
                    torch.func.grad(loss(nmmfit.simulate_ref), argnums=(0, 1))(W, g)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("batched_W", [False, True])
def test_torch_func_vmap_matches_reference(batched_W):
    """vmap over the coupling or over a parameter (folded into the kernels' batch B), and jacrev under it."""
    W, g, f = func_problem(batched_W)
    Ws, gs = torch.stack([W, 1.3 * W]), torch.stack([g, 0.8 * g])
    for in_dims, args in [((0, None), (Ws, g)), ((None, 0), (W, gs)), ((0, 0), (Ws, gs))]:
        ours = torch.func.vmap(f(nmmfit.simulate), in_dims=in_dims)(*args)
        ref = torch.func.vmap(f(nmmfit.simulate_ref), in_dims=in_dims)(*args)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    jac = lambda sim: torch.func.vmap(torch.func.jacrev(f(sim), argnums=1), in_dims=(0, None))(Ws, g)
    torch.testing.assert_close(jac(nmmfit.simulate), jac(nmmfit.simulate_ref), rtol=1e-9, atol=1e-12)


def test_forward_mode_ad_raises_clearly():
    """No tangent pass in the kernels: forward-mode AD is an error naming the alternatives, never zeros."""
    import torch.autograd.forward_ad as fwAD
    W, g, f = func_problem()
    match = r"forward-mode AD .* not supported by the fused kernels.*simulate_ref"
    with pytest.raises(NotImplementedError, match=match):
        torch.func.jacfwd(f(nmmfit.simulate), argnums=1)(W, g)
    with pytest.raises(NotImplementedError, match=match):
        torch.func.jvp(lambda g: f(nmmfit.simulate)(W, g), (g,), (torch.ones_like(g),))
    with pytest.raises(NotImplementedError, match=match), fwAD.dual_level():
        f(nmmfit.simulate)(W, fwAD.make_dual(g, torch.ones_like(g)))


def test_double_backward_raises_clearly():
    """A derivative of the gradient (Hessian, gradient penalty) is an error, never a silent zero."""
    W, g, f = func_problem()
    loss = lambda g: f(nmmfit.simulate)(W, g).square().sum()
    g1 = g.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(g1), g1, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward .* not supported by the fused kernels.*simulate_ref"):
        grad.sum().backward()
    with pytest.raises(NotImplementedError, match="double backward"):
        torch.func.hessian(loss)(g)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.functional.hessian(loss, g)


# ---- Ctrl-C --------------------------------------------------------------------------------------

INTERRUPT_CHILD = r"""
import signal, sys, time, torch, nmmfit
torch.set_num_threads(int(sys.argv[1]))                      # 2: one simulation's backward is pipelined
N = 20
W = torch.rand(N, N, generator=torch.Generator().manual_seed(0)) / N
g = torch.full((1,), 0.5, requires_grad=True)
run = lambda n: nmmfit.simulate(W, {"g": g}, None, n, preset="griffiths2022", batch=1, steps_per_sample=500)
run(2000)                                                    # warm-up: the first call is slower
t = time.perf_counter()
run(20000)
steps_per_s = 20000 / (time.perf_counter() - t)
long_forward = lambda: run(int(30 * steps_per_s))
out = run(int(3 * steps_per_s))
long_backward = lambda: out.bold.square().sum().backward()   # the adjoint costs several forwards: >> the wait
for call in (long_forward, long_backward):
    print("ready", flush=True)
    try:
        call()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    run(100)
    print("recovered", flush=True)
"""


def _as_a_terminal_child():
    """A child as a shell starts it: SIGINT unblocked and at its default. The test process's own
    mask and dispositions (left by the libraries and tests before, e.g. worker threads that block
    signals) are inherited across exec and would keep the signal from the child."""
    import signal
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_child_once(threads: int) -> str | None:
    """One run of INTERRUPT_CHILD on ``threads``: SIGINT during its long forward, then its long
    backward. None when both returned KeyboardInterrupt within a second and recovered, else what
    went wrong."""
    import queue
    import signal
    import subprocess
    import sys
    import threading
    import time
    no_site = ["-S"] if sys.flags.no_site else []   # as this interpreter was started (make sanitize)
    proc = subprocess.Popen([sys.executable, *no_site, "-c", INTERRUPT_CHILD, str(threads)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_as_a_terminal_child)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x.strip()) for x in proc.stdout], daemon=True).start()
    try:
        for phase, wait in (("forward", 1.0), ("backward", 0.3)):
            if lines.get(timeout=60) != "ready" or proc.poll() is not None:
                return f"{phase}: the child was not ready"
            time.sleep(wait)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            got = lines.get(timeout=10)
            if got != "KeyboardInterrupt" or time.monotonic() - sent >= 1.0:
                return f"{phase}: got {got!r} after {time.monotonic() - sent:.2f} s"
            if lines.get(timeout=10) != "recovered":
                return f"{phase}: the next call did not run"
        return None if proc.wait(timeout=10) == 0 else "the child failed at exit"
    except queue.Empty:
        status = open(f"/proc/{proc.pid}/status").read() if proc.poll() is None else ""
        masks = " ".join(x for x in status.splitlines() if x.startswith(("SigBlk", "SigIgn", "SigCgt")))
        proc.kill()
        return f"no reply within the timeout ({masks}); child stderr:\n{proc.stderr.read()[-2000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_interrupts_a_long_simulate(threads):
    """SIGINT during a long forward (~30 s), then during a long backward (on 2 threads: both threads
    of its pipeline stop), returns control within a second as KeyboardInterrupt, and leaves
    Python's handler and the next call as they were."""
    why = _interrupt_child_once(threads)
    assert why is None, why


def test_extension_refuses_a_different_torch():
    from nmmfit._ext import check_torch_version

    check_torch_version("2.13.0+cpu", "2.13.0+cu130")                 # same release, other build: fine
    with pytest.raises(ImportError, match=r"built against torch 2.12.0.*torch 2.13.0 is installed.*rebuild"):
        check_torch_version("2.12.0", "2.13.0")
