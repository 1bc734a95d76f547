"""The fit loop's fast paths give the results of the slow ones: nmmfit's Adam is torch.optim.Adam
bit for bit (and reads and writes its state format); stacked history records round-trip; the
one-sync finiteness check answers as the elementwise one."""
import numpy as np
import pytest
import torch

from nmmfit._validate import all_finite
from nmmfit.fit.adam import Adam
from nmmfit.fit.history import History


def _groups(dtype):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, generator=g, dtype=dtype).requires_grad_()
    b = torch.randn(2, 4, 4, generator=g, dtype=dtype).requires_grad_()
    c = torch.randn(5, generator=g, dtype=dtype).requires_grad_()
    return [dict(params=[a], lr=0.01, name="a"), dict(params=[b, c], lr=0.3, name="b")]


def _train(opt, groups, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    params = [p for grp in groups for p in grp["params"]]
    for k in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = sum(((p - torch.randn(p.shape, generator=g, dtype=p.dtype)) ** 2).sum() * (k + 1) for p in params)
        loss.backward()
        if k == 2:      # a parameter without a gradient at one step is skipped, as torch does
            params[0].grad = None
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_matches_torch_bitwise(dtype):
    ours, theirs = _groups(dtype), _groups(dtype)
    kw = dict(lr=0.01, eps=1e-7, betas=(0.9, 0.999))
    got = _train(Adam(ours, **kw), ours, 12)
    want = _train(torch.optim.Adam(theirs, **kw), theirs, 12)
    for x, y in zip(got, want):
        assert torch.equal(x, y)
    assert not torch.equal(got[0], _groups(dtype)[0]["params"][0].detach())  # the parameters moved


def test_adam_state_dict_interchanges_with_torch():
    kw = dict(lr=0.01, eps=1e-7, betas=(0.9, 0.999))
    a, b = _groups(torch.float32), _groups(torch.float32)
    ours, theirs = Adam(a, **kw), torch.optim.Adam(b, **kw)
    _train(ours, a, 5)
    _train(theirs, b, 5)
    # continue each from the other's state: both must give what an uninterrupted torch run gives
    c, d = _groups(torch.float32), _groups(torch.float32)
    for src, dst in ((c, a), (d, b)):
        for gs, gd in zip(src, dst):
            for ps, pd in zip(gs["params"], gd["params"]):
                ps.data.copy_(pd.detach())
    ours_from_torch, torch_from_ours = Adam(c, **kw), torch.optim.Adam(d, **kw)
    ours_from_torch.load_state_dict(theirs.state_dict())
    torch_from_ours.load_state_dict(ours.state_dict())
    x = _train(ours_from_torch, c, 4, seed=7)
    y = _train(torch_from_ours, d, 4, seed=7)
    z = _train(theirs, b, 4, seed=7)
    for u, v, w in zip(x, y, z):
        assert torch.equal(u, w) and torch.equal(v, w)


def test_adam_refuses_other_groups():
    a = _groups(torch.float32)
    opt = Adam(a, lr=0.01)
    state = opt.state_dict()
    state["param_groups"] = state["param_groups"][:1]
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict(state)


def test_history_state_dict_stacks_records_and_round_trips():
    h = History(average_last=3)

    class _M:
        fitted, gains = ("g",), None

        def value(self, name):
            return torch.tensor([1.0, 2.0]) * len(h.updates["loss"])

    class _O:
        def hyperparameters(self):
            return {}

    for k in range(4):
        h.record_update(0, k, np.array([k, -k], dtype=np.float32), {"fc": torch.tensor([0.5, k])}, _M(), _O())
    h.record_epoch(np.array([1.0, 2.0]), np.array([0.3, 0.4]), 1.5)
    state = h.state_dict()
    assert isinstance(state["updates"]["loss"], torch.Tensor) and state["updates"]["loss"].shape == (4, 2)
    back = History(average_last=3)
    back.load_state_dict(state)
    want, got = h.arrays(2), back.arrays(2)
    assert want.keys() == got.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
        assert got[k].dtype == want[k].dtype


def test_history_reads_unstacked_checkpoints():
    """Checkpoints written before the records were stacked hold one tensor per update."""
    state = dict(updates={"loss": [torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])], "epoch": [0, 0],
                          "window": [0, 1]},
                 epochs={"epoch_loss": [torch.tensor([2.0, 3.0])], "epoch_train_r": [torch.tensor([0.1, 0.2])],
                         "epoch_time": [1.0]}, gains=[])
    h = History(average_last=2)
    h.load_state_dict(state)
    np.testing.assert_array_equal(h.arrays(2)["loss"], [[1.0, 2.0], [3.0, 4.0]])
    assert h.n_updates == 2


def test_adam_refuses_a_torch_state_with_other_settings():
    a, b = _groups(torch.float32), _groups(torch.float32)
    theirs = torch.optim.Adam(b, lr=0.01, weight_decay=0.1)
    _train(theirs, b, 2)
    with pytest.raises(ValueError, match="weight_decay"):
        Adam(a, lr=0.01).load_state_dict(theirs.state_dict())


def test_a_fit_with_checkpoints_does_not_import_the_compiler_stack(tmp_path):
    """torch.optim's optimizers import torch._dynamo on first use (seconds); a windowed fit with
    checkpoints and a resume must not (a fresh interpreter, so no other test has imported it)."""
    import subprocess
    import sys

    code = f"""
import sys, numpy as np, nmmfit
rng = np.random.default_rng(0)
sc, bold = rng.uniform(0, 1, (5, 5)), rng.normal(size=(40, 5))
def run(**kw):
    model = nmmfit.RWW(sc, batch=2, seed=0)
    return nmmfit.fit(model, bold, window=10, test_windows=1, burn_in_windows=1, out_dir={str(tmp_path)!r}, **kw)
run(epochs=1)
run(epochs=2, resume=True)
assert "torch._dynamo" not in sys.modules, "torch._dynamo was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_all_finite_agrees_with_the_elementwise_check(dtype, bad):
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(3, 5, generator=g, dtype=dtype), None, torch.arange(4), torch.empty(0, dtype=dtype),
               torch.randn(7, generator=g, dtype=torch.float32)]
    assert all_finite(*tensors) and all_finite() and all_finite(None)
    for k in (0, 4):
        spoiled = [t.clone() if t is not None else None for t in tensors]
        spoiled[k].view(-1)[2] = bad
        assert not all_finite(*spoiled)
    # opposite infinities: the sum is NaN either way
    assert not all_finite(torch.tensor([float("inf"), -float("inf")], dtype=dtype))


def test_all_finite_falls_back_when_a_finite_sum_overflows():
    big = torch.full((4,), 1e308, dtype=torch.float64)
    assert not bool(torch.isfinite(big.sum()))
    assert all_finite(big, torch.ones(2))


@pytest.mark.parametrize("k", [1, 3, 10])
def test_last_records_keep_the_last_k_in_order_across_checkpoints(k):
    """The gains' ring buffer holds what a deque(maxlen=k) of clones held, also after a round trip
    through a checkpoint at any fill, and reads the list a checkpoint of older versions holds."""
    from collections import deque

    from nmmfit.fit.history import LastRecords

    g = torch.Generator().manual_seed(k)
    for n in (1, k, k + 1, 3 * k + 2, 25):
        ring, want = LastRecords(k), deque(maxlen=k)
        for i in range(n):
            t = torch.randn(2, 3, 3, generator=g)
            ring.append(t)
            want.append(t.clone())
            t.zero_()                                  # a record is a copy, not the live tensor
            if i == n // 2:
                ring = LastRecords(k, ring.ordered().clone())
        assert torch.equal(ring.ordered(), torch.stack(list(want)))
        assert torch.equal(LastRecords(k, list(want)).ordered(), torch.stack(list(want)))


def test_checkpoint_writer_writes_in_order_and_reports_a_failed_write(tmp_path):
    from nmmfit.fit.checkpoint import CheckpointWriter, load_checkpoint

    writer = CheckpointWriter()
    path = tmp_path / "checkpoint.pt"
    for epoch in range(3):
        writer.save(path, dict(epoch=epoch, x=torch.full((1000,), float(epoch))))
    writer.wait()
    ck = load_checkpoint(path)
    assert ck["epoch"] == 2 and torch.equal(ck["x"], torch.full((1000,), 2.0))
    writer.save(tmp_path / "missing" / "checkpoint.pt", dict(epoch=3))
    with pytest.raises(FileNotFoundError):
        writer.wait()
    writer.wait()                                      # the error is raised once
    assert load_checkpoint(path)["epoch"] == 2         # the last good checkpoint stays
