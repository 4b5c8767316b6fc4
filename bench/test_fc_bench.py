"""FC NNGP+NTK timings: ntkx against its peers on the same inputs, in the same run.

Every call computes the float64 NNGP and NTK of ``Dense -> [Relu -> Dense] x L``
(W_std=1, no bias) on the symmetric Gram of N Gaussian points in R^d.

Peers:
  ntkx             ``ntkx.fc_kernels(x, None, spec, device='cpu')`` (NNGP and NTK)
  ntkx_ntk         the same with ``get='ntk'``: one N x N output, as numpy_gram (d >= 784)
  numpy_gram       ``x @ x.T`` only: the floor for any method when d is large
  numpy_recursion  the whole recursion on whole (N, N) matrices in numpy (below)
  neural_tangents  the same network's ``jax.jit(kernel_fn, static_argnames='get')`` (float64), when
                   installed, built by conftest.nt_compile / nt_peer (which refuse an eager one)

Run: ``python -m pytest bench/ --benchmark-only`` (see bench/README.md).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import ntkx

from .conftest import HAS_NT, PEERS, SHRINK, make_case, neural_tangents_stax, nt_compile, nt_peer, skip_reason

W_STD, B_STD = 1.0, 0.0
RELU = ntkx.Activation("abrelu", 0.0, 1.0)

#: (N, d, L) at full size.
CASES = [(1000, 784, 10), (4000, 784, 10), (2000, 32, 10), (8000, 32, 10), (4000, 784, 1)]

#: Rounds are chosen from one warm call's time: about TARGET_SECONDS of timed calls
#: (a tenth with NTKX_BENCH_SMALL), never fewer than MIN_ROUNDS nor more than MAX_ROUNDS.
TARGET_SECONDS, MIN_ROUNDS, MAX_ROUNDS = 10.0 / SHRINK, 3, 20

#: numpy_recursion against ntkx on the correctness case (max entrywise relative error).
REL_TOL = 1e-10


def points(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def numpy_recursion(x: np.ndarray, depth: int, w_std: float = W_STD, b_std: float = B_STD):
    """ReLU NNGP and NTK of the symmetric Gram, vectorized over whole (N, N) matrices.

    Sigma^0 = w^2 X X^T / d + b^2 and Theta^0 = Sigma^0; then per layer, with
    q = diag(Sigma), n = sqrt(q q'), theta = arccos(clip(Sigma / n, -1, 1)):
      Sigma    <- w^2 n (sin theta + (pi - theta) cos theta) / (2 pi) + b^2
      SigmaDot  = w^2 (pi - theta) / (2 pi)
      Theta    <- SigmaDot * Theta + Sigma
    In-place on five (N, N) buffers (2.5 GB at N = 8000).
    """
    n_pts, d = x.shape
    w2, b2 = w_std**2, b_std**2
    sigma = x @ x.T
    sigma *= w2 / d
    sigma += b2
    theta_ntk = sigma.copy()
    norm = np.empty_like(sigma)
    ang = np.empty_like(sigma)
    tmp = np.empty_like(sigma)
    for _ in range(depth):
        q = np.diag(sigma).copy()
        np.multiply.outer(q, q, out=norm)
        np.sqrt(norm, out=norm)  # sqrt(q q) == q exactly: the diagonal cosine is exactly 1
        np.divide(sigma, norm, out=sigma)  # sigma now holds cos(theta)
        np.clip(sigma, -1.0, 1.0, out=sigma)
        np.arccos(sigma, out=ang)
        np.sin(ang, out=tmp)
        np.subtract(math.pi, ang, out=ang)  # ang now holds pi - theta
        np.multiply(ang, sigma, out=sigma)
        tmp += sigma  # J1 = sin + (pi - theta) cos
        np.multiply(norm, tmp, out=sigma)
        sigma *= w2 / (2 * math.pi)
        sigma += b2
        ang *= w2 / (2 * math.pi)  # SigmaDot
        theta_ntk *= ang
        theta_ntk += sigma
    return sigma, theta_ntk


def make_peer(peer: str, x: np.ndarray, depth: int):
    """A zero-argument callable computing (NNGP, NTK) of `x`, synchronized, for `peer`."""
    if peer == "ntkx":
        spec = ntkx.FcSpec(depth, W_STD, B_STD, RELU)
        return lambda: ntkx.fc_kernels(x, None, spec, get=("nngp", "ntk"), device="cpu", dtype=np.float64)
    if peer == "ntkx_ntk":
        spec = ntkx.FcSpec(depth, W_STD, B_STD, RELU)
        return lambda: ntkx.fc_kernels(x, None, spec, get="ntk", device="cpu", dtype=np.float64)
    if peer == "numpy_gram":
        return lambda: x @ x.T
    if peer == "numpy_recursion":
        return lambda: numpy_recursion(x, depth)
    if peer == "neural_tangents":
        nt = neural_tangents_stax()
        kernel_fn = nt.serial(nt.Dense(1, W_std=W_STD), *[nt.Relu(), nt.Dense(1, W_std=W_STD)] * depth)[2]
        # jax.jit(kernel_fn, static_argnames='get'); nt_peer refuses anything uncompiled.
        run = nt_peer(nt_compile(kernel_fn, len(x)), x, get=("nngp", "ntk"))
        out = run()  # compile outside the timed calls
        assert out.ntk.dtype == np.float64, "neural-tangents is not running in float64"
        return run
    raise ValueError(peer)


def _case_param(n, d, depth):
    case = make_case(n, d, depth)
    return pytest.param(case, id=case.id, marks=[pytest.mark.slow] if n >= 4000 else [])


def _peer_param(peer):
    return pytest.param(peer, id=peer, marks=[pytest.mark.nt] if peer == "neural_tangents" else [])


@pytest.mark.parametrize("case", [_case_param(*c) for c in CASES])
@pytest.mark.parametrize("peer", [_peer_param(p) for p in PEERS])
def test_fc_kernels(benchmark, record, peer, case):
    reason = skip_reason(peer, case)
    if reason:
        pytest.skip(reason)
    fn = make_peer(peer, points(case.n, case.d), case.depth)
    t0 = time.perf_counter()
    fn()  # warm-up, and the estimate that sets the number of rounds
    warm = time.perf_counter() - t0
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, TARGET_SECONDS // max(warm, 1e-9))))
    benchmark.group = case.id
    benchmark.extra_info.update(peer=peer, N=case.n, d=case.d, L=case.depth, warm_call_s=warm)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)
    record(case, peer, benchmark)


# --------------------------------------------------------------------------------------
# The peers compute what ntkx computes (plain tests: they run without --benchmark-only).
# --------------------------------------------------------------------------------------


def _max_rel(actual, desired, off_diagonal: bool = False) -> float:
    """Max of |actual - desired| / sqrt(K_ii K_jj), K = `desired` (a symmetric Gram).

    sqrt(K_ii K_jj) bounds |K_ij| (Cauchy-Schwarz): the kernel's size at that pair,
    also where an entry passes through zero (the NTK's linear term at L = 1 does).
    """
    desired = np.asarray(desired)
    diag = np.diag(desired)
    err = np.abs(np.asarray(actual) - desired) / np.sqrt(np.multiply.outer(diag, diag))
    if off_diagonal:
        err = err[~np.eye(len(err), dtype=bool)]
    return float(err.max())


@pytest.mark.parametrize("depth", [1, 10])
def test_numpy_recursion_matches_ntkx(depth):
    x = points(150, 32, seed=1)
    nngp, ntk = numpy_recursion(x, depth)
    ref = ntkx.fc_kernels(x, None, ntkx.FcSpec(depth, W_STD, B_STD, RELU), device="cpu")
    assert _max_rel(nngp, ref.nngp) < REL_TOL
    assert _max_rel(ntk, ref.ntk) < REL_TOL


@pytest.mark.nt
@pytest.mark.skipif(not HAS_NT, reason="neural-tangents is not installed")
def test_neural_tangents_peer_matches_ntkx():
    """Off the diagonal only: neural-tangents' diagonal angle is ill-conditioned."""
    x = points(60, 32, seed=2)
    out = make_peer("neural_tangents", x, 10)()
    ref = ntkx.fc_kernels(x, None, ntkx.FcSpec(10, W_STD, B_STD, RELU), device="cpu")
    assert _max_rel(out.nngp, ref.nngp, off_diagonal=True) < REL_TOL
    assert _max_rel(out.ntk, ref.ntk, off_diagonal=True) < REL_TOL
