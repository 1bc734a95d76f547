"""The CUDA kernels: an nvcc compile check wherever nvcc exists, and on a GPU the CUDA ops against the
reference, the CPU ops, gradcheck, opcheck on the CUDA key, and determinism.

Without a GPU the kernels' logic is still tested: tests/test_cuda_emulation.py runs the same kernel
bodies on the CPU. Timings belong in bench/bench_gpu.py.
"""
import glob
import os
import shutil
import subprocess

import pytest
import torch

import nmmfit
from nmmfit._inputs import prepare_inputs
import sim_helpers
from sim_helpers import grads_of, rel_err, run_kw, to

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CU_FILES = sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
PRESETS = ["griffiths2022", "deco2014"]


def find_nvcc():
    """nvcc and the toolkit's include directory (CUDA_HOME, /usr/local/cuda, then nvcc on PATH)."""
    roots = [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]
    on_path = shutil.which("nvcc")
    if on_path:
        roots.append(os.path.dirname(os.path.dirname(os.path.realpath(on_path))))
    for root in roots:
        if root and os.path.exists(os.path.join(root, "bin", "nvcc")):
            return os.path.join(root, "bin", "nvcc"), os.path.join(root, "include")
    return (on_path, None) if on_path else (None, None)


NVCC, CUDA_INCLUDE = find_nvcc()


# ---- compile checks (no GPU needed) ---------------------------------------------------------------

@pytest.mark.skipif(NVCC is None, reason="nvcc not found (CUDA_HOME, PATH, /usr/local/cuda)")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_cu_files_compile_with_nvcc(arch, tmp_path):
    assert CU_FILES, "no csrc/cuda/*.cu"
    for src in CU_FILES:
        out = tmp_path / (os.path.basename(src) + ".o")
        # a host-only function called from device code is only a warning by default (and fails at
        # run time): make it an error, the one thing the CPU emulation cannot catch
        cmd = [NVCC, "-std=c++17", "-O3", "-c", f"-arch={arch}", "-Werror", "cross-execution-space-call",
               "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc"), src, "-o", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"nvcc -arch={arch} {os.path.basename(src)} failed:\n{r.stderr[-4000:]}"
        assert out.stat().st_size > 0


def _torch_cuda_headers():
    from torch.utils.cpp_extension import include_paths
    paths = include_paths()
    return paths if any(os.path.isdir(os.path.join(p, "c10", "cuda")) for p in paths) else None


@pytest.mark.skipif(NVCC is None or shutil.which("g++") is None, reason="needs nvcc's CUDA headers and g++")
def test_torch_wrapper_compiles(tmp_path):
    """ops_cuda.cpp (the torch-facing wrapper) is only built with a CUDA torch: syntax-check it here
    against the installed torch headers and the toolkit's, so it cannot silently rot on CPU machines."""
    paths = _torch_cuda_headers()
    if paths is None:
        pytest.skip("this torch ships no c10/cuda headers")
    cuda_inc = CUDA_INCLUDE
    if not cuda_inc or not os.path.exists(os.path.join(cuda_inc, "cuda_runtime_api.h")):
        pytest.skip(f"no cuda_runtime_api.h under {cuda_inc}")
    # A CPU build of torch lacks this one generated header (a cmakedefine); stand in for it.
    stub = tmp_path / "stub"
    if not any(os.path.exists(os.path.join(p, "c10", "cuda", "impl", "cuda_cmake_macros.h")) for p in paths):
        (stub / "c10" / "cuda" / "impl").mkdir(parents=True)
        (stub / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    cmd = ["g++", "-std=c++20", "-fsyntax-only", *("-I" + p for p in paths), "-I" + str(stub), "-I" + cuda_inc,
           "-I" + os.path.join(ROOT, "csrc", "include"), "-I" + os.path.join(ROOT, "csrc"),
           os.path.join(ROOT, "csrc", "cuda", "ops_cuda.cpp")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]


# ---- on a GPU ------------------------------------------------------------------------------------

HAS_CUDA = bool(torch.cuda.is_available() and nmmfit.HAS_EXTENSION and nmmfit.build_info().get("cuda"))
gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device and the extension built with CUDA")
DEV = "cuda"


def make_problem(*args, device=DEV, **kw):
    return sim_helpers.make_problem(*args, device=device, **kw)


@gpu
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
@pytest.mark.parametrize("B,N,n_steps,K", [(1, 5, 7, 10), (5, 7, 31, 10), (3, 13, 29, 10), (2, 1, 20, 4), (40, 11, 25, 6)])
def test_forward_matches_reference_float64(preset, batched_W, B, N, n_steps, K):
    W, params, state0 = make_problem(preset, B, N, torch.float64, batched_W=batched_W)
    kw = run_kw(preset, checkpoint_every=K)
    out = nmmfit.simulate(W, params, state0, n_steps, **kw)
    assert out.bold.is_cuda
    ref = nmmfit.simulate_ref(to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), n_steps, **kw)
    for name, a, b in zip(out._fields, out, ref):
        assert a.shape == b.shape, name
        if b.numel():
            assert rel_err(a, b) < 1e-11, name


@gpu
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
def test_cuda_op_equals_cpu_op(preset, batched_W):
    """All five outputs (checkpoints too) of the CUDA op equal the CPU op's: float64 to rounding,
    float32 within float32's own error."""
    W, params, state0 = make_problem(preset, 6, 9, torch.float64, batched_W=batched_W, device="cpu")
    inp = prepare_inputs(W, params, state0, 60, **run_kw(preset))
    args = [inp.W, inp.params.contiguous(), inp.state0.contiguous(), inp.stream, inp.seed, inp.step_offset, inp.n_steps,
            inp.steps_per_sample, inp.record_every, inp.checkpoint_every, inp.noise, inp.preset.switches(), inp.preset.scalars()]
    cpu = torch.ops.nmmfit.simulate(*args)
    gpu_args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    out = torch.ops.nmmfit.simulate(*gpu_args)
    for a, b in zip(out, cpu):
        if b.numel():
            assert rel_err(a, b) < 1e-11
    f32 = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    cpu32 = torch.ops.nmmfit.simulate(*f32)
    out32 = torch.ops.nmmfit.simulate(*[a.cuda() if isinstance(a, torch.Tensor) else a for a in f32])
    for a, c, e in zip(out32, cpu32, cpu):
        if e.numel():
            assert a.dtype == torch.float32
            assert rel_err(a, e) <= 10 * rel_err(c, e) + 1e-5


@gpu
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
@pytest.mark.parametrize("regional", [False, True])
def test_gradients_match_autograd_through_reference(preset, batched_W, regional):
    sim_helpers.assert_gradients_match_reference(preset, batched_W, regional, device=DEV)


@gpu
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("u_every,shared_u", [(1, False), (4, True)])
def test_external_input_matches_reference(preset, u_every, shared_u):
    W, params, state0 = make_problem(preset, 3, 5, torch.float64)
    n_steps = 43 if preset == "griffiths2022" else 83
    kw = run_kw(preset, u_every=u_every)
    u = sim_helpers.make_input(3, n_steps, 5, u_every, shared=shared_u)
    ours = nmmfit.simulate(W, params, state0, n_steps, u=u.to(DEV), **kw)
    ref = nmmfit.simulate_ref(to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), n_steps, u=u, **kw)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=1e-14)
    sim_helpers.assert_gradients_match_reference(preset, False, True, device=DEV, u_every=u_every, shared_u=shared_u)


@gpu
@pytest.mark.parametrize("preset", PRESETS)
def test_gradients_without_noise_and_with_T_below_K(preset):
    W, params, state0 = make_problem(preset, 2, 4, torch.float64)
    kw = run_kw(preset, noise=False, checkpoint_every=50)
    ours = grads_of(nmmfit.simulate, W, params, state0, 21, kw)
    ref = grads_of(nmmfit.simulate_ref, to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), 21, kw)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-9, atol=1e-9 * b.abs().max().item())


@gpu
@pytest.mark.parametrize("preset", PRESETS)
def test_gradcheck_float64(preset):
    assert sim_helpers.gradcheck_simulate(preset, device=DEV)


def op_args(preset, dtype=torch.float64, n_steps=14, batched_W=False, B=2, N=3):
    W, params, state0 = make_problem(preset, B, N, dtype, batched_W=batched_W)
    inp = prepare_inputs(W, params, state0, n_steps, **run_kw(preset, steps_per_sample=3, record_every=2, checkpoint_every=5))
    return (inp.W.clone(), inp.params.contiguous().clone(), inp.state0.clone(), inp.stream, inp.seed, inp.step_offset,
            inp.n_steps, inp.steps_per_sample, inp.record_every, inp.checkpoint_every, inp.noise,
            inp.preset.switches(), inp.preset.scalars())


@gpu
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("batched_W", [False, True])
def test_opcheck_simulate_cuda(preset, batched_W):
    args = op_args(preset, batched_W=batched_W)
    assert args[0].is_cuda and args[3].is_cuda
    for t in args[:3]:
        t.requires_grad_()
    torch.library.opcheck(torch.ops.nmmfit.simulate.default, args)


@gpu
def test_opcheck_noise_cuda():
    torch.library.opcheck(torch.ops.nmmfit.noise.default, (3, torch.arange(2, device=DEV), 4, 5, 7, torch.float32))


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_cuda_equals_cpu(dtype):
    stream = torch.tensor([0, 5, 2**32 - 1])
    a = nmmfit.noise(2**40 + 3, stream.cuda(), 7, 6, step_offset=2**33, dtype=dtype)
    b = nmmfit.noise(2**40 + 3, stream, 7, 6, step_offset=2**33, dtype=dtype)
    assert a.is_cuda
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(a.cpu(), b, **tol)


@gpu
@pytest.mark.parametrize("batched_W", [False, True])
def test_deterministic_run_after_run(batched_W):
    """No float atomics: the same inputs give bitwise the same outputs and gradients (shared W: the
    coupling-gradient partials of many blocks are reduced in a fixed order)."""
    W, params, state0 = make_problem("deco2014", 300, 20, torch.float32, batched_W=batched_W)
    kw = run_kw("deco2014")
    first = [*nmmfit.simulate(W, params, state0, 120, **kw)] + grads_of(nmmfit.simulate, W, params, state0, 120, kw)
    for _ in range(2):
        again = [*nmmfit.simulate(W, params, state0, 120, **kw)] + grads_of(nmmfit.simulate, W, params, state0, 120, kw)
        for a, b in zip(first, again):
            assert torch.equal(a, b)


@gpu
@pytest.mark.parametrize("spb,w_smem", [("1", "0"), ("3", "1"), ("7", "1"), ("4", "0")])
def test_packing_and_W_placement_do_not_change_results(monkeypatch, spb, w_smem):
    W, params, state0 = make_problem("griffiths2022", 10, 9, torch.float64)
    kw = run_kw("griffiths2022")
    ref = [*nmmfit.simulate(to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), 40, **kw)] + \
        grads_of(nmmfit.simulate, to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), 40, kw)
    monkeypatch.setenv("NMMFIT_CUDA_SIMS_PER_BLOCK", spb)
    monkeypatch.setenv("NMMFIT_CUDA_W_SMEM", w_smem)
    out = [*nmmfit.simulate(W, params, state0, 40, **kw)] + grads_of(nmmfit.simulate, W, params, state0, 40, kw)
    for a, b in zip(out, ref):
        assert rel_err(a, b) < 1e-10


@gpu
@pytest.mark.parametrize("N", [257, 1024])
def test_large_networks(N):
    """N > 256: blocks of up to 1024 threads (one simulation each), W from global memory."""
    W, params, state0 = make_problem("deco2014", 2, N, torch.float32)
    kw = run_kw("deco2014", steps_per_sample=5, record_every=0, checkpoint_every=6)
    out = nmmfit.simulate(W, params, state0, 20, **kw)
    cpu = nmmfit.simulate(to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), 20, **kw)
    for a, b in zip(out, cpu):
        if b.numel():
            assert rel_err(a, b) < 1e-4
    ours = grads_of(nmmfit.simulate, W, params, state0, 20, kw)
    ref = grads_of(nmmfit.simulate, to(W, "cpu"), to(params, "cpu"), to(state0, "cpu"), 20, kw)
    for a, b in zip(ours, ref):
        assert rel_err(a, b) < 1e-3


@gpu
def test_too_many_nodes_raise_clearly():
    W, params, state0 = make_problem("deco2014", 1, 1025, torch.float32)
    with pytest.raises(RuntimeError, match="too many nodes.*1024"):
        nmmfit.simulate(W, params, state0, 3)


@gpu
def test_inputs_on_different_devices_raise_clearly():
    args = list(op_args("deco2014"))
    args[1] = args[1].cpu()
    with pytest.raises(RuntimeError, match="params"):
        torch.ops.nmmfit.simulate(*args)
