"""FCD in cuBNM's convention and distances between samples (nmmfit.stats.fcd, MODEL.md "FCD")."""
import numpy as np
import pytest
import scipy.stats
import torch

from nmmfit.stats.fcd import fcd, fcd_values, ks_distance, wasserstein1, window_fc, window_frames


def cubnm_fcd(bold, window_size, window_step):
    """numpy transcription of cuBNM's ``utils.calculate_fcd`` (drop_edges=True, no outlier volumes,
    no interhemispheric exclusion): ``bold # (nodes, volumes)`` -> (FCD lower triangle, window FC trils)."""
    n_vols, nodes = bold.shape[1], bold.shape[0]
    trils = []
    center = window_size // 2
    while center <= n_vols - 1 - window_size // 2:
        window = bold[:, center - window_size // 2:center + window_size // 2 + 1]
        center += window_step
        trils.append(np.corrcoef(window)[np.tril_indices(nodes, -1)])
    trils = np.stack(trils, axis=1)
    m = np.corrcoef(trils.T)
    return m[np.tril_indices(m.shape[0], -1)], trils.T


def random_bold(B, T, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, N, generator=g, dtype=torch.float64)
    return x.cumsum(1) * 0.3 + x  # some autocorrelation, so FCD values spread


@pytest.mark.parametrize("T, window, step", [(120, 20, 5), (121, 20, 5), (60, 10, 1), (47, 2, 3), (32, 30, 1)])
def test_matches_cubnm(T, window, step):
    bold = random_bold(2, T, 6)
    vals, fcs = fcd_values(bold, window, step), window_fc(bold, window, step)
    for b in range(2):
        ref_vals, ref_fcs = cubnm_fcd(bold[b].numpy().T.copy(), window, step)
        np.testing.assert_allclose(fcs[b].numpy(), ref_fcs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(vals[b].numpy(), ref_vals, rtol=0, atol=1e-12)
    assert fcs.shape == (2, (T - 1 - window) // step + 1, 15)


def test_fcd_matrix_is_symmetric_with_unit_diagonal():
    m = fcd(random_bold(3, 80, 5), 10, 4)
    torch.testing.assert_close(m, m.transpose(-1, -2))
    torch.testing.assert_close(torch.diagonal(m, dim1=-2, dim2=-1), torch.ones(3, m.shape[-1], dtype=torch.float64))


def test_window_frames_follow_cubnm():
    # cuBNM: window_size_TRs = int(round(window / (TR * 2))) * 2, window_step_TRs = int(round(step / TR))
    for tr in (0.72, 0.8, 1.0, 2.0, 2.5):
        assert window_frames(tr) == (int(np.round(30 / (tr * 2))) * 2, int(np.round(5 / tr)))
    with pytest.raises(ValueError, match="window"):
        window_frames(20.0)


def test_ks_matches_scipy():
    g = np.random.default_rng(1)
    cases = [(g.normal(size=50), g.normal(0.3, 1.2, size=73)),
             (g.integers(0, 5, 40).astype(float), g.integers(0, 6, 31).astype(float)),  # ties
             (g.normal(size=1), g.normal(size=9))]
    for a, b in cases:
        ours = ks_distance(torch.tensor(a), torch.tensor(b)).item()
        assert ours == pytest.approx(scipy.stats.ks_2samp(a, b).statistic, abs=1e-12)
    batch_a, b = torch.tensor(g.normal(size=(3, 20))), torch.tensor(g.normal(size=25))
    ours = ks_distance(batch_a, b)
    assert ours.shape == (3,)
    for i in range(3):
        assert ours[i].item() == pytest.approx(scipy.stats.ks_2samp(batch_a[i].numpy(), b.numpy()).statistic)


def test_w1_matches_scipy():
    g = np.random.default_rng(2)
    for n, m in [(40, 40), (37, 53), (1, 8), (100, 3)]:
        a, b = g.normal(size=n), g.normal(0.5, 2.0, size=m)
        ours = wasserstein1(torch.tensor(a), torch.tensor(b)).item()
        assert ours == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-12, abs=1e-14)
    assert wasserstein1(torch.tensor([1, 2, 3]), torch.tensor([2, 5])).item() == pytest.approx(1.5)  # integers
    a, b = torch.tensor(g.normal(size=(4, 30))), torch.tensor(g.normal(size=(1, 22)))
    ours = wasserstein1(a, b)
    for i in range(4):
        assert ours[i].item() == pytest.approx(scipy.stats.wasserstein_distance(a[i].numpy(), b[0].numpy()), rel=1e-12)


def test_gradcheck_w1_and_fcd():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 9, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(wasserstein1, (a, b))
    bold = random_bold(1, 24, 4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: fcd(x, 8, 4), (bold,))
    assert torch.autograd.gradcheck(lambda x: wasserstein1(fcd_values(x, 8, 3), torch.linspace(-0.5, 0.9, 7,
                                                           dtype=torch.float64)), (bold,))


@pytest.mark.parametrize("call, match", [
    (lambda x: window_fc(x, 7, 2), "even"),
    (lambda x: window_fc(x, 40, 2), "longer than the run"),
    (lambda x: window_fc(x, 10, 0), "step"),
    (lambda x: window_fc(x, 10.0, 2), "window"),
    (lambda x: window_fc(x[0, :, 0], 10, 2), "bold"),
    (lambda x: fcd_values(x, 30, 5), "two"),
    (lambda x: ks_distance(x[0, 0, :0], x[0, 0]), "a"),
    (lambda x: wasserstein1(x[0, 0], torch.tensor([1.0, float("nan")])), "b"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(random_bold(1, 35, 4))
