"""Philox4x32-10 and the noise stream: known answers, an independent scalar implementation,
the documented counter layout, normal statistics, offsets and streams."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from nmmfit.philox import noise_ref, philox4x32, philox_words_ref

KAT = [  # Random123 known-answer vectors for philox4x32-10: counter; key -> output
    ("00000000 00000000 00000000 00000000", "00000000 00000000", "6627e8d5 e169c58d bc57ac4c 9b00dbd8"),
    ("ffffffff ffffffff ffffffff ffffffff", "ffffffff ffffffff", "408f276d 41c83b0e a20bc7c6 6d5451fd"),
    ("243f6a88 85a308d3 13198a2e 03707344", "a4093822 299f31d0", "d16cfe09 94fdcceb 5001e420 24126ea1"),
]


def _words(s):
    return [int(w, 16) for w in s.split()]


def _philox_scalar(ctr, key):
    """Textbook Philox4x32-10 on Python ints (arbitrary precision: no limb tricks)."""
    M = 2**32
    c, k = list(ctr), list(key)
    for r in range(10):
        if r:
            k = [(k[0] + 0x9E3779B9) % M, (k[1] + 0xBB67AE85) % M]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 % M, (p0 >> 32) ^ c[3] ^ k[1], p0 % M]
    return c


@pytest.mark.parametrize("ctr,key,out", KAT)
def test_known_answers(ctr, key, out):
    got = philox4x32(torch.tensor(_words(ctr)), torch.tensor(_words(key)))
    assert got.dtype == torch.int64
    assert got.tolist() == _words(out)
    assert _philox_scalar(_words(ctr), _words(key)) == _words(out)


def test_matches_scalar_on_random_words():
    rng = np.random.default_rng(1)
    ctr = rng.integers(0, 2**32, size=(200, 4), dtype=np.int64)
    key = rng.integers(0, 2**32, size=(200, 2), dtype=np.int64)
    ctr[:5] = 2**32 - 1  # extreme words, where a careless 64-bit product overflows
    got = philox4x32(torch.from_numpy(ctr), torch.from_numpy(key))
    want = [_philox_scalar(c, k) for c, k in zip(ctr.tolist(), key.tolist())]
    assert got.tolist() == want
    assert bool(((got >= 0) & (got < 2**32)).all())


def test_counter_layout():
    seed = 0x0123456789ABCDEF
    stream = [7, 0, 2**32 - 1]
    offset = 2**32 - 2  # the step counter crosses into the high word
    w = philox_words_ref(seed, stream, n_nodes=3, n_steps=4, step_offset=offset)
    assert w.shape == (3, 4, 3, 4)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    for b, s in enumerate(stream):
        for t in range(4):
            tg = offset + t
            for i in range(3):
                assert w[b, t, i].tolist() == _philox_scalar((tg % 2**32, tg >> 32, i, s), key)


def test_box_muller_convention():
    seed, stream = 5, [3]
    w = philox_words_ref(seed, stream, 4, 6, step_offset=11)
    z = noise_ref(seed, stream, 4, 6, step_offset=11, dtype=torch.float64)
    assert z.shape == (1, 6, 2, 4) and z.dtype == torch.float64
    for t in range(6):
        for i in range(4):
            u0 = (w[0, t, i, 0].item() + 0.5) / 2**32
            u1 = (w[0, t, i, 1].item() + 0.5) / 2**32
            r = math.sqrt(-2 * math.log(u0))
            assert z[0, t, 0, i].item() == pytest.approx(r * math.cos(2 * math.pi * u1), abs=1e-12)
            assert z[0, t, 1, i].item() == pytest.approx(r * math.sin(2 * math.pi * u1), abs=1e-12)
    z32 = noise_ref(seed, stream, 4, 6, step_offset=11, dtype=torch.float32)
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32.double(), z, rtol=0, atol=2e-3)


def test_normal_statistics():
    B, T, N = 4, 1000, 32
    z = noise_ref(1234, list(range(B)), N, T, dtype=torch.float64).numpy()  # [B, T, 2, N]
    n = z.size
    flat = z.ravel()
    assert abs(flat.mean()) < 5 / math.sqrt(n)
    assert abs(flat.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(stats.kurtosis(flat)) < 5 * math.sqrt(24 / n)
    assert abs(stats.skew(flat)) < 5 * math.sqrt(6 / n)
    assert stats.kstest(flat, "norm").pvalue > 1e-4

    def corr(a, b):
        a, b = a.ravel(), b.ravel()
        r = np.corrcoef(a, b)[0, 1]
        assert abs(r) < 5 / math.sqrt(a.size), r

    corr(z[:, :, 0], z[:, :, 1])                 # E vs I
    corr(z[:, :, :, :-1], z[:, :, :, 1:])        # neighbouring nodes
    corr(z[:, :-1], z[:, 1:])                    # consecutive steps
    corr(z[:-1], z[1:])                          # neighbouring simulations (streams)
    corr(z[:, :, :, 0], z[:, :, :, N - 1])       # distant nodes
    # E and I are independent as pairs, not just uncorrelated: E^2 vs I^2
    corr(z[:, :, 0] ** 2 - 1, z[:, :, 1] ** 2 - 1)


def test_offset_continuation():
    long = noise_ref(9, [0, 4], 5, 30, step_offset=0)
    for k in (0, 1, 13, 29):
        torch.testing.assert_close(noise_ref(9, [0, 4], 5, 30 - k, step_offset=k), long[:, k:], rtol=0, atol=0)
    # across the 32-bit boundary of the step counter
    hi = 2**32 - 3
    a = noise_ref(9, [1], 3, 6, step_offset=hi)
    b = torch.cat([noise_ref(9, [1], 3, 2, step_offset=hi), noise_ref(9, [1], 3, 4, step_offset=hi + 2)], dim=1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the high word of the step matters: step 2**32 + t differs from step t
    assert not torch.equal(noise_ref(9, [1], 3, 4, step_offset=2**32), noise_ref(9, [1], 3, 4))


def test_stream_and_seed_independence():
    z = noise_ref(3, [0, 5, 9], 6, 10)
    # a simulation's noise depends on its stream index, not on its position in the batch
    torch.testing.assert_close(noise_ref(3, [5], 6, 10)[0], z[1], rtol=0, atol=0)
    torch.testing.assert_close(noise_ref(3, torch.tensor([9, 0]), 6, 10), z[[2, 0]], rtol=0, atol=0)
    assert not torch.equal(z[0], z[1]) and not torch.equal(z[1], z[2])
    # every seed word matters
    assert not torch.equal(noise_ref(4, [0], 6, 10), z[:1])
    assert not torch.equal(noise_ref(3 + 2**32, [0], 6, 10), z[:1])
    # node index matters (no two nodes share a sequence)
    assert not torch.equal(z[0, :, :, 0], z[0, :, :, 1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed"):
        noise_ref(-1, [0], 2, 2)
    with pytest.raises(ValueError, match="stream"):
        noise_ref(0, [-1], 2, 2)
    with pytest.raises(ValueError, match="n_nodes"):
        noise_ref(0, [0], 0, 2)
    with pytest.raises(TypeError, match="dtype"):
        noise_ref(0, [0], 2, 2, dtype=torch.int32)
    with pytest.raises(ValueError, match="counter"):
        philox4x32(torch.zeros(3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))
