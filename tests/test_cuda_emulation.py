"""The CUDA kernels' bodies, run on the CPU by the emulation ops, against the CPU ops.

The test-only ops ``nmmfit_testing::simulate`` / ``simulate_backward`` / ``noise`` / ``gpu_plan``
(csrc/cuda/emulate_cpu.cpp, built with ``-DNMMFIT_TESTING=ON`` as ``make test`` does) execute csrc/cuda/block_program.h exactly as the GPU would (same launch
plan, packing of simulations into blocks, shared-memory and workspace layouts, grid-stride walk,
reductions), with every barrier-delimited phase run as a loop over the block's threads. Shared memory
and workspace start as NaN, so a read of anything not written shows. Threads of a phase are run in
ascending, descending and alternating order: a race inside a phase would change the result.
What this does not cover is the thin CUDA executor (threadIdx/__syncthreads, launches): tests/test_cuda.py.
"""
import pytest
import torch

import nmmfit
from nmmfit._inputs import prepare_inputs

pytestmark = pytest.mark.skipif(
    not nmmfit.HAS_EXTENSION or not nmmfit.build_info().get("testing_ops"),
    reason="the test-only CUDA emulation ops (nmmfit_testing::) are not built: build with "
           "--config-settings=cmake.define.NMMFIT_TESTING=ON (make test does)")
EMU = torch.ops.nmmfit_testing

PRESETS = ["griffiths2022", "deco2014"]


def problem(preset, B, N, n_steps, *, batched_W=False, dtype=torch.float64, K=7, sps=5, rec=3, noise=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand((B, N, N) if batched_W else (N, N), generator=g, dtype=torch.float64)
    W = ((W + W.transpose(-1, -2)) / 2).to(dtype)
    params = {k: v * (1 + 0.1 * torch.rand(B, N, generator=g, dtype=torch.float64)).to(dtype)
              for k, v in nmmfit.get_preset(preset).defaults.items()}
    inp = prepare_inputs(W, params, None, n_steps, preset=preset, steps_per_sample=sps, record_every=rec, seed=3 + seed,
                         step_offset=2, checkpoint_every=K, noise=noise, batch=B)
    state0 = (inp.state0 + 0.05 * torch.rand(B, 6, N, generator=g, dtype=torch.float64).to(dtype)).contiguous()
    return (inp.W.contiguous(), inp.params.contiguous(), state0, inp.stream, inp.seed, inp.step_offset, inp.n_steps,
            inp.steps_per_sample, inp.record_every, inp.checkpoint_every, inp.noise, inp.preset.switches(),
            inp.preset.scalars())


def cotangents(fwd, seed=1, drop=()):
    g = torch.Generator().manual_seed(seed)
    cts = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype) for o in fwd[:4]]
    return [None if k in drop else c for k, c in enumerate(cts)]


def backward_args(args, fwd, cts, need_W=True):
    W, params, _, stream, *config = args
    return (*cts, W, params, stream, fwd[4], *config, need_W)


# The emulated GPU kernels sum the coupling in j order, the CPU executor in two interleaved register
# chains: gradients through a few dozen chaotic-ish steps differ at ~1e-10 relative in float64.
GRAD_RTOL = 1e-9


def assert_close_rel(a, b, rtol, name=""):
    assert a.shape == b.shape, name
    if b.numel():
        scale = b.abs().max().clamp_min(1e-300)
        err = ((a - b).abs().max() / scale).item()
        assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:.3g}"


def plan(B, N, n_steps, K, batched_W, dtype, backward, need_W=True):
    spb, threads, groups, grid, w_smem, smem, ws = EMU.gpu_plan(
        B, N, n_steps, K, batched_W, dtype, backward, need_W)
    return dict(spb=spb, threads=threads, groups=groups, grid=grid, w_smem=bool(w_smem), smem=smem, ws=ws)


FWD_NAMES = ["bold", "E_rec", "I_rec", "state", "checkpoints"]
GRAD_NAMES = ["grad_W", "grad_params", "grad_state0"]


def assert_forward_matches(args):
    """The emulated forward equals the CPU op's to 1e-12 (float64); returns the CPU outputs."""
    cpu = torch.ops.nmmfit.simulate(*args)
    for name, a, b in zip(FWD_NAMES, EMU.simulate(*args), cpu):
        assert_close_rel(a, b, 1e-12, name)
    return cpu


def assert_backward_matches(args, cpu, cts, need_W=True, label=""):
    """The emulated backward equals the CPU op's to GRAD_RTOL; returns the emulated gradients."""
    g_cpu = torch.ops.nmmfit.simulate_backward(*backward_args(args, cpu, cts, need_W))
    g_emu = EMU.simulate_backward(*backward_args(args, cpu, cts, need_W))
    for name, a, b in zip(GRAD_NAMES, g_emu, g_cpu):
        assert torch.isfinite(a).all(), name
        assert_close_rel(a, b, GRAD_RTOL, f"{name} {label}")
    return g_emu


# (B, N, n_steps, K, sims_per_block, W in shared memory)
CASES = [
    (1, 1, 12, 5, None, None),      # one node
    (5, 7, 20, 7, 3, None),          # odd N, 3 per block, B not a multiple of the packing, T % K != 0
    (4, 13, 23, 30, 2, "0"),         # T < K, W from global memory (transposed)
    (3, 9, 21, 7, 1, "1"),           # one simulation per block, W in shared memory, T % K == 0
    (7, 5, 16, 4, 4, None),          # several groups per block at small sizes
]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
@pytest.mark.parametrize("B,N,n_steps,K,spb,w_smem", CASES)
def test_forward_and_backward_match_cpu_float64(monkeypatch, preset, batched_W, B, N, n_steps, K, spb, w_smem):
    if spb is not None:
        monkeypatch.setenv("NMMFIT_CUDA_SIMS_PER_BLOCK", str(spb))
    if w_smem is not None:
        monkeypatch.setenv("NMMFIT_CUDA_W_SMEM", w_smem)
    monkeypatch.setenv("NMMFIT_EMU_THREAD_ORDER", "2")
    if preset == "deco2014":
        n_steps *= 3  # a few hemodynamic steps (every 10th)
    args = problem(preset, B, N, n_steps, batched_W=batched_W, K=K)
    p = plan(B, N, n_steps, K, batched_W, torch.float64, True)
    if spb is not None:
        assert p["spb"] == min(spb, B)
    if w_smem is not None and not batched_W:
        assert p["w_smem"] == (w_smem == "1")
    cpu = assert_forward_matches(args)
    assert_backward_matches(args, cpu, cotangents(cpu))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
def test_grid_smaller_than_groups(monkeypatch, preset, batched_W):
    """The backward grid is capped at what the device holds: blocks walk several groups, reuse their
    segment buffers and (per-simulation W) their coupling-gradient partials."""
    monkeypatch.setenv("NMMFIT_EMU_SMS", "1")
    monkeypatch.setenv("NMMFIT_EMU_BLOCKS_PER_SM", "2")
    monkeypatch.setenv("NMMFIT_CUDA_SIMS_PER_BLOCK", "2")
    B, N, n_steps, K = 9, 6, 25, 6
    p = plan(B, N, n_steps, K, batched_W, torch.float64, True)
    assert p["grid"] == 2 and p["groups"] == 5
    args = problem(preset, B, N, n_steps, batched_W=batched_W, K=K)
    cpu = torch.ops.nmmfit.simulate(*args)
    assert_backward_matches(args, cpu, cotangents(cpu))


@pytest.mark.parametrize("preset", PRESETS)
def test_missing_cotangents_and_no_grad_W(preset):
    args = problem(preset, 3, 5, 18, K=4)
    cpu = torch.ops.nmmfit.simulate(*args)
    for drop in [(0,), (1, 2), (3,), (0, 1, 2)]:
        cts = cotangents(cpu, drop=drop)
        for need_W in (True, False):
            g_emu = assert_backward_matches(args, cpu, cts, need_W, f"drop={drop} need_W={need_W}")
            if not need_W:
                assert (g_emu[0] == 0).all()


@pytest.mark.parametrize("batched_W", [False, True])
def test_no_race_thread_order_does_not_matter(monkeypatch, batched_W):
    """Every phase gives bitwise the same result whatever order its threads run in."""
    monkeypatch.setenv("NMMFIT_CUDA_SIMS_PER_BLOCK", "3")
    args = problem("griffiths2022", 5, 7, 19, batched_W=batched_W, K=6)
    cpu = torch.ops.nmmfit.simulate(*args)
    cts = cotangents(cpu)
    results = []
    for order in ("0", "1", "2"):
        monkeypatch.setenv("NMMFIT_EMU_THREAD_ORDER", order)
        fwd = EMU.simulate(*args)
        bwd = EMU.simulate_backward(*backward_args(args, cpu, cts))
        results.append([*fwd, *bwd])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_deterministic_run_after_run():
    args = problem("deco2014", 6, 8, 40, K=9)
    fwd = EMU.simulate(*args)
    cts = cotangents(fwd)
    first = EMU.simulate_backward(*backward_args(args, fwd, cts))
    for _ in range(2):
        again = EMU.simulate(*args)
        for a, b in zip(fwd, again):
            assert torch.equal(a, b)
        g = EMU.simulate_backward(*backward_args(args, fwd, cts))
        for a, b in zip(first, g):
            assert torch.equal(a, b)


@pytest.mark.parametrize("preset", PRESETS)
def test_without_noise(preset):
    args = problem(preset, 2, 6, 30, K=8, noise=False)
    cpu = assert_forward_matches(args)
    assert_backward_matches(args, cpu, cotangents(cpu))


@pytest.mark.parametrize("preset", PRESETS)
def test_float32_within_float32_error(preset):
    """float32: the emulated kernel is as close to the float64 result as the CPU op's float32 is."""
    B, N, n_steps = 3, 9, 45
    args64 = problem(preset, B, N, n_steps, K=10)
    args32 = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args64)

    def assert_as_close_as_cpu(names, emu, cpu, exact):
        for name, e, c, x in zip(names, emu, cpu, exact):
            if not x.numel():
                continue
            assert e.dtype == torch.float32
            scale = x.abs().max()
            err_cpu = ((c.double() - x).abs().max() / scale).item()
            err_emu = ((e.double() - x).abs().max() / scale).item()
            assert err_emu <= 10 * err_cpu + 1e-5, name

    exact = torch.ops.nmmfit.simulate(*args64)
    cpu32 = torch.ops.nmmfit.simulate(*args32)
    assert_as_close_as_cpu(["bold", "E_rec", "I_rec", "state", "checkpoints"],
                           EMU.simulate(*args32), cpu32, exact)
    cts64 = cotangents(exact)
    cts32 = [c.float() for c in cts64]
    g64 = torch.ops.nmmfit.simulate_backward(*backward_args(args64, exact, cts64))
    g_cpu = torch.ops.nmmfit.simulate_backward(*backward_args(args32, cpu32, cts32))
    g_emu = EMU.simulate_backward(*backward_args(args32, cpu32, cts32))
    assert_as_close_as_cpu(["grad_W", "grad_params", "grad_state0"], g_emu, g_cpu, g64)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("u_every", [1, 4])
def test_external_input(preset, u_every):
    """u [B, n_u, N]: the emulated kernels read row t // u_every and sum dL/du over its steps as the CPU op."""
    B, N, n_steps = 3, 6, 27
    args = problem(preset, B, N, n_steps, K=5)
    n_u = -(-n_steps // u_every)
    u = 0.1 * torch.randn(B, n_u, N, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cpu = torch.ops.nmmfit.simulate(*args, u, u_every)
    for name, a, b in zip(FWD_NAMES, EMU.simulate(*args, u, u_every), cpu):
        assert_close_rel(a, b, 1e-12, name)
    assert not torch.equal(cpu[3], torch.ops.nmmfit.simulate(*args)[3])
    cts = cotangents(cpu)
    g_cpu = torch.ops.nmmfit.simulate_backward(*backward_args(args, cpu, cts), u, u_every)
    g_emu = EMU.simulate_backward(*backward_args(args, cpu, cts), u, u_every)
    assert g_cpu[3].shape == (B, n_u, N) and g_cpu[3].abs().max() > 0
    for name, a, b in zip(GRAD_NAMES + ["grad_u"], g_emu, g_cpu):
        assert_close_rel(a, b, GRAD_RTOL, name)


def test_large_network_one_simulation_per_block_W_from_global():
    """N > 256: one simulation per block, blocks of up to 1024 threads, a shared W too big for shared
    memory read transposed from global memory."""
    B, N, n_steps = 2, 300, 6
    p = plan(B, N, n_steps, 4, False, torch.float64, True)
    assert p["spb"] == 1 and p["threads"] == 320 and not p["w_smem"]
    args = problem("deco2014", B, N, n_steps, K=4, sps=3, rec=2)
    cpu = assert_forward_matches(args)
    assert_backward_matches(args, cpu, cotangents(cpu))


def test_packing_heuristic():
    # small N, large B: blocks of up to 256 threads, full warps
    p = plan(8192, 68, 100, 10, False, torch.float32, False)
    assert p["spb"] == 3 and p["threads"] == 224 and p["groups"] == 2731
    assert p["w_smem"]  # 68 x 69 floats fit comfortably
    # few simulations: no packing beyond what spreads them over the (2 emulated) SMs
    assert plan(1, 68, 100, 10, False, torch.float32, False)["spb"] == 1
    assert plan(4, 10, 100, 10, False, torch.float32, False)["spb"] == 1
    # per-simulation W never goes to shared memory
    assert not plan(16, 20, 100, 10, True, torch.float32, False)["w_smem"]
    # big shared W stays in global memory
    assert not plan(16, 400, 100, 10, False, torch.float32, False)["w_smem"]
    # N = 1024 still fits (one thread per node)
    p = plan(2, 1024, 10, 5, False, torch.float32, True)
    assert p["spb"] == 1 and p["threads"] == 1024


def test_too_many_nodes_raises_clearly():
    with pytest.raises(RuntimeError, match="too many nodes.*1024"):
        plan(1, 1025, 10, 5, False, torch.float32, False)


def test_not_enough_shared_memory_raises_clearly(monkeypatch):
    monkeypatch.setenv("NMMFIT_EMU_SMEM_PER_BLOCK", str(48 * 1024))
    with pytest.raises(RuntimeError, match="shared memory"):
        plan(1, 1000, 10, 5, False, torch.float64, True)  # 21 * 1000 * 8 bytes > 48 KiB
    args = problem("deco2014", 1, 400, 3, K=2)
    with pytest.raises(RuntimeError, match="shared memory"):
        EMU.simulate_backward(
            *backward_args(args, torch.ops.nmmfit.simulate(*args), cotangents(torch.ops.nmmfit.simulate(*args))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_matches_cpu(dtype):
    stream = torch.tensor([0, 5, 2**32 - 1], dtype=torch.int64)
    a = EMU.noise(123456789, stream, 7, 11, 2**33 + 5, dtype)
    b = torch.ops.nmmfit.noise(123456789, stream, 7, 11, 2**33 + 5, dtype)
    torch.testing.assert_close(a, b, rtol=1e-5 if dtype == torch.float32 else 1e-13, atol=1e-6 if dtype == torch.float32 else 1e-14)
