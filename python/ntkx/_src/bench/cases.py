"""The one home of every benchmark case and every peer: ``ntkx bench`` and ``pytest bench/`` both use these.

A case is a frozen dataclass that knows its inputs (seeded), its peers in running order
(ntkx first, neural-tangents last, so XLA's thread pool is idle while the others are
timed), how to build each peer's zero-argument callable on those inputs (or why it is
skipped: `PeerSkipped`), the work of the problem (`Work`: flops and bytes, hence its
roofline position) and how to check an output against an independent reference
(`check`, run on the warm-up output before any timed call: a fast wrong answer fails).

Peers (their builders, the references and the tolerances live in `ntkx._src.bench.peers`):

* ``ntkx``: the library call (``fc_kernels``, the stax CNN ``kernel_fn``, ``MSEDynamics``,
  ``cg_solve``, ``mse_dynamics_iterative``, ``precompute``).
* ``numpy_gram``: ``X @ X.T`` only, the floor of any exact kernel method when d is large.
* ``numpy_recursion``: the FC recursion on whole ``(N, N)`` numpy matrices (`numpy_recursion`).
* ``neural_tangents``: neural-tangents' stax ``kernel_fn`` of the same network, float64,
  **compiled only**: ``jax.jit(kernel_fn, static_argnames='get')`` or ``nt.batch`` (which
  jits each block), built by `nt_compile` and timed through `nt_timed`, which refuses
  anything else; a path that turns out eager raises `EagerPeerError` at its first call.
* dynamics: ``numpy_eigh`` (the dense eigendecomposition alone), ``numpy_cholesky``
  (a dense solve); precompute: ``fc_kernels_memmap``, ``precompute_local``, ``precompute_dask``.

References: the FC kernels against `numpy_recursion` on the first points (a kernel
entry depends only on its two points, so the leading block of the Gram of N points is
the Gram of the first m); the CNN kernels against `numpy_cntk`, a literal 4-D numpy
CNTK on the first images; the dynamics against a dense eigendecomposition or a dense
solve's residual. Tolerances are `TOL`, each with its reason.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ntkx._src.bench.peers import (
    CNN_DEPTH, CNN_W_STD, Check, NT_MISSING, NT_PREDICT, PeerSkipped, RELU_STEP_FLOPS, TOL, Work,
    cnn_flops_per_pair, max_rel, neural_tangents_stax, nt_compile, nt_peer, numpy_cntk, numpy_recursion, pair,
    points, symmetric_entries,
)


# ---------------------------------------------------------------------------------------------
# Cases


def fc_kernel_fn(stax: Any, depth: int, w_std: float = 1.0) -> Callable:
    """``Dense -> [Relu -> Dense] x depth`` (no bias) as a stax ``kernel_fn`` (neural-tangents' stax)."""
    return stax.serial(stax.Dense(1, W_std=w_std), *[stax.Relu(), stax.Dense(1, W_std=w_std)] * depth)[2]


@functools.lru_cache(maxsize=8)
def _fc_reference(m: int, d: int, depth: int, w_std: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    return numpy_recursion(points(m, d, seed), depth, w_std)


@dataclasses.dataclass(frozen=True)
class FcCase:
    """NNGP + NTK of ``Dense -> [Relu -> Dense] x depth`` (no bias) on the symmetric Gram of n Gaussian points in R^d.

    Attributes:
      suite: the suite that runs it ('fc', 'dtype', 'threads').
      n, d, depth: the problem; w_std: weight std (sqrt 2 keeps deep nets' scale).
      dtype: the outputs' dtype; threads: ntkx's OpenMP and numpy's BLAS threads (None: all).
      peers: which peers run, in order. check_points: points of the reference block.
      skip: (peer, reason) pairs: peers this case lists but does not run (every case has this field).
    """

    suite: str
    n: int
    d: int
    depth: int
    w_std: float = 1.0
    dtype: str = "float64"
    threads: Optional[int] = None
    peers: Tuple[str, ...] = ("ntkx", "numpy_gram", "numpy_recursion", "neural_tangents")
    check_points: int = 128
    skip: Tuple[Tuple[str, str], ...] = ()
    seed: int = 0

    @property
    def id(self) -> str:
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/N{self.n}-d{self.d}-L{self.depth}-{self.dtype}{th}"

    @property
    def family(self) -> str:
        """The case without its size: the curves of the time-vs-N plot."""
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/d{self.d}-L{self.depth}-{self.dtype}{th}"

    @property
    def size(self) -> int:
        return self.n

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "d": self.d, "L": self.depth, "w_std": self.w_std, "b_std": 0.0, "act": "relu",
                "dtype": self.dtype, "threads": self.threads, "symmetric": True, "get": ["nngp", "ntk"]}

    def inputs(self) -> np.ndarray:
        return points(self.n, self.d, self.seed)

    def entries(self, peer: str) -> int:
        return symmetric_entries(self.n)

    def work(self, peer: str, out: Any = None) -> Work:
        item = np.dtype(self.dtype).itemsize
        gram = 2.0 * symmetric_entries(self.n) * self.d  # one triangle of X X^T
        if peer == "numpy_gram":
            return Work(gram, 8.0 * self.n * self.d + item * self.n**2, self.dtype)
        flops = gram + symmetric_entries(self.n) * self.depth * RELU_STEP_FLOPS
        # ntkx's CPU backend computes in float64 whatever the output dtype.
        return Work(flops, 8.0 * self.n * self.d + 2 * item * self.n**2, "float64")

    def build(self, peer: str, x: np.ndarray) -> Callable[[], Any]:
        import ntkx
        from threadpoolctl import threadpool_limits

        spec = ntkx.FcSpec(self.depth, self.w_std, 0.0, ntkx.Activation("abrelu", 0.0, 1.0))
        dt = np.dtype(self.dtype)
        if peer == "ntkx":
            return lambda: ntkx.fc_kernels(x, None, spec, get=("nngp", "ntk"), device="cpu", dtype=dt,
                                           threads=self.threads)
        if peer == "numpy_gram":
            xd = x.astype(dt)

            def gram():
                with threadpool_limits(self.threads, user_api="blas"):
                    return xd @ xd.T
            return gram
        if peer == "numpy_recursion":
            if self.dtype != "float64":
                raise PeerSkipped("numpy_recursion runs in float64 only")
            return lambda: numpy_recursion(x, self.depth, self.w_std)
        if peer == "neural_tangents":
            nt = neural_tangents_stax()
            if nt is None:
                raise PeerSkipped(NT_MISSING)
            if self.dtype != "float64":
                raise PeerSkipped("neural-tangents is timed in float64 only (jax_enable_x64)")
            return nt_peer(nt_compile(fc_kernel_fn(nt, self.depth, self.w_std), len(x)), x, get=("nngp", "ntk"))
        raise ValueError(f"unknown FC peer {peer!r}")

    def check(self, peer: str, out: Any) -> Check:
        m = min(self.n, self.check_points)
        nngp_ref, ntk_ref = _fc_reference(m, self.d, self.depth, self.w_std, self.seed)
        if peer == "numpy_gram":
            x = points(m, self.d, self.seed)
            g = x @ x.T
            tol = TOL["float64" if self.dtype == "float64" else "float32"]
            return Check("float64 X @ X.T", max_rel(np.asarray(out)[:m, :m], g), tol)
        nngp, ntk = pair(out)
        tol = TOL["deep"] if self.depth >= 1000 else TOL["float64" if self.dtype == "float64" else "float32"]
        off = peer == "neural_tangents"  # its diagonal angle is ill-conditioned by design
        err = max(max_rel(nngp[:m, :m], nngp_ref, off), max_rel(ntk[:m, :m], ntk_ref, off))
        return Check(f"numpy_recursion on the first {m} points{' (off-diagonal)' if off else ''}", err, tol)


@functools.lru_cache(maxsize=8)
def _cnn_reference(dataset: str, m: int, readout: str) -> Tuple[np.ndarray, np.ndarray]:
    return numpy_cntk(cnn_images(dataset, m), readout)


def cnn_kernel_fn(stax: Any, readout: str) -> Callable:
    """The CNN's ``kernel_fn`` from a stax module (``ntkx.stax`` or neural-tangents'; the same names)."""
    layers = []
    for _ in range(CNN_DEPTH):
        layers += [stax.Conv(1, (3, 3), padding="SAME", W_std=CNN_W_STD), stax.Relu()]
    pool = stax.GlobalAvgPool() if readout == "gap" else stax.Flatten()
    return stax.serial(*layers, pool, stax.Dense(1, W_std=CNN_W_STD))[2]


def cnn_images(dataset: str, n: int) -> np.ndarray:
    """`n` images NHWC: scikit-learn's digits (8 x 8 x 1, pixels / 16) or Gaussian S x S x 3 ('synthS': 'synth32')."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        x = load_digits().data[:n].reshape(-1, 8, 8, 1) / 16.0
    elif dataset.startswith("synth") and dataset[5:].isdigit():
        side = int(dataset[5:])
        x = np.random.default_rng(0).standard_normal((n, side, side, 3))
    else:
        raise ValueError(f"unknown image set {dataset!r}")
    return np.ascontiguousarray(x)


@dataclasses.dataclass(frozen=True)
class CnnCase:
    """NNGP + NTK of ``[Conv(3x3, SAME, W_std=sqrt 2) -> Relu] x 6 -> GAP|Flatten -> Dense`` on a symmetric Gram.

    Attributes:
      dataset: 'digits' or 'synth32'; readout: 'gap' or 'vanilla'.
      n: images in ntkx's Gram; n_nt: in neural-tangents' (fewer where it would take minutes:
        compare rates, pairs per second); nt_batch: its nt.batch block (None: jax.jit of the whole Gram).
      threads: ntkx's OpenMP threads (None: all).
    """

    suite: str
    dataset: str
    readout: str
    n: int
    n_nt: int = 0
    nt_batch: Optional[int] = None
    threads: Optional[int] = None
    peers: Tuple[str, ...] = ("ntkx", "numpy_gram", "neural_tangents")
    check_images: int = 4
    skip: Tuple[Tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/{self.dataset}-{self.readout}-N{self.n}{th}"

    @property
    def family(self) -> str:
        th = "" if self.threads is None else f"-t{self.threads}"
        return f"{self.suite}/{self.dataset}-{self.readout}{th}"

    @property
    def size(self) -> int:
        return self.n

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "N_neural_tangents": self.n_nt, "nt_batch": self.nt_batch, "images": self.dataset,
                "readout": self.readout, "depth": CNN_DEPTH, "filter": [3, 3], "W_std": CNN_W_STD,
                "threads": self.threads, "dtype": "float64", "get": ["nngp", "ntk"]}

    def _n(self, peer: str) -> int:
        return self.n_nt if peer == "neural_tangents" else self.n

    def inputs(self) -> np.ndarray:
        return cnn_images(self.dataset, max(self.n, self.n_nt))

    def entries(self, peer: str) -> int:
        return symmetric_entries(self._n(peer))

    def work(self, peer: str, out: Any = None) -> Work:
        n = self._n(peer)
        P, Q, C = (8, 8, 1) if self.dataset == "digits" else (int(self.dataset[5:]),) * 2 + (3,)
        if peer == "numpy_gram":
            f = 2.0 * symmetric_entries(n) * P * Q * C
            return Work(f, 8.0 * n * P * Q * C + 8.0 * n * n)
        f = symmetric_entries(n) * cnn_flops_per_pair(P, Q, C, CNN_DEPTH, self.readout)
        return Work(f, 8.0 * n * P * Q * C + 16.0 * n * n)

    def build(self, peer: str, x: np.ndarray) -> Callable[[], Any]:
        from threadpoolctl import threadpool_limits

        n = self._n(peer)
        x = x[:n]
        if peer == "ntkx":
            from ntkx import stax

            kfn = cnn_kernel_fn(stax, self.readout)
            return lambda: kfn(x, None, ("nngp", "ntk"), device="cpu", threads=self.threads)
        if peer == "numpy_gram":
            flat = x.reshape(len(x), -1)

            def gram():
                with threadpool_limits(self.threads, user_api="blas"):
                    return flat @ flat.T
            return gram
        if peer == "neural_tangents":
            nt = neural_tangents_stax()
            if nt is None:
                raise PeerSkipped(NT_MISSING)
            if n < 2:
                raise PeerSkipped("not run at this scale (its Gram would take minutes)")
            kfn = cnn_kernel_fn(nt, self.readout)
            return nt_peer(nt_compile(kfn, n, self.nt_batch, store_on_device=False), x, get=("nngp", "ntk"))
        raise ValueError(f"unknown CNN peer {peer!r}")

    def check(self, peer: str, out: Any) -> Check:
        m = min(self._n(peer), self.check_images)
        if peer == "numpy_gram":
            flat = cnn_images(self.dataset, m).reshape(m, -1)
            return Check("float64 X @ X.T", max_rel(np.asarray(out)[:m, :m], flat @ flat.T), TOL["float64"])
        nngp_ref, ntk_ref = _cnn_reference(self.dataset, m, self.readout)
        nngp, ntk = pair(out)
        err = max(max_rel(nngp[:m, :m], nngp_ref), max_rel(ntk[:m, :m], ntk_ref))
        return Check(f"numpy_cntk (literal 4-D) on the first {m} images", err, TOL["cnn"])


@functools.lru_cache(maxsize=4)
def _dynamics_problem(n: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """The NTK of ``Dense -> [Relu -> Dense] x 3`` on n Gaussian points in R^16, and (n, 4) targets."""
    import ntkx

    x = points(n, 16, seed)
    k = ntkx.fc_kernels(x, None, ntkx.FcSpec(3), get="ntk", device="cpu")
    y = np.random.default_rng(seed + 1).standard_normal((n, 4))
    return k, y


@functools.lru_cache(maxsize=4)
def _dense_dynamics(n: int, seed: int, times: Tuple[float, ...]) -> np.ndarray:
    """``f_t = y - V exp(-t lam / y.size) V^T y`` (neural-tangents' time scale) by numpy's eigh."""
    k, y = _dynamics_problem(n, seed)
    lam, v = np.linalg.eigh(k)
    vy = v.T @ y
    return np.stack([y - v @ (np.exp(-t * lam / y.size)[:, None] * vy) for t in times])


@dataclasses.dataclass(frozen=True)
class DynamicsCase:
    """Gradient-flow dynamics under MSE on an n x n NTK (float64, 4 targets).

    Attributes:
      path: 'eigh' (`MSEDynamics`: one eigendecomposition, outputs at several times), 'cg'
        (`cg_solve` of ``(K + ridge I) X = Y``) or 'lanczos' (`mse_dynamics_iterative`).
    """

    suite: str
    path: str
    n: int
    times: Tuple[float, ...] = (1.0, 10.0, 100.0)
    seed: int = 0
    skip: Tuple[Tuple[str, str], ...] = ()

    @property
    def peers(self) -> Tuple[str, ...]:
        return {"eigh": ("ntkx", "numpy_eigh", "neural_tangents"), "cg": ("ntkx", "numpy_cholesky"),
                "lanczos": ("ntkx", "numpy_eigh")}[self.path]

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.path}-N{self.n}"

    @property
    def family(self) -> str:
        return f"{self.suite}/{self.path}"

    @property
    def size(self) -> int:
        return self.n

    @property
    def ridge(self) -> float:
        return 1e-3

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "path": self.path, "targets": 4, "times": list(self.times), "ridge": self.ridge,
                "kernel": "ntk of fc depth=3 on N(0, I_16) points", "convention": "neural_tangents"}

    def inputs(self) -> Tuple[np.ndarray, np.ndarray]:
        return _dynamics_problem(self.n, self.seed)

    def entries(self, peer: str) -> int:
        return self.n

    def work(self, peer: str, out: Any = None) -> Optional[Work]:
        n = float(self.n)
        if self.path == "cg":
            if peer == "ntkx":
                products = getattr(out, "operator_products", None)
                return None if products is None else Work(products * 2 * n * n * 4, products * 8 * n * n)
            return Work(n**3 / 3 + 4 * n * n * 4, 8 * n * n)
        if self.path == "lanczos" and peer == "ntkx":
            return None  # the basis size is not reported: no flop count
        # LAPACK's tridiagonal reduction 4/3 n^3 and the eigenvectors' back-transformation 2 n^3
        # (the tridiagonal eigensolver itself not counted): a lower bound.
        return Work((4.0 / 3.0 + 2.0) * n**3, 8 * n * n * 3)

    def build(self, peer: str, data: Tuple[np.ndarray, np.ndarray]) -> Callable[[], Any]:
        k, y = data
        times = np.asarray(self.times)
        if peer == "ntkx":
            from ntkx import dynamics

            if self.path == "eigh":
                return lambda: dynamics.MSEDynamics(k, y, convention="neural_tangents").train_outputs(times)
            if self.path == "cg":
                return lambda: dynamics.cg_solve(k, y, ridge=self.ridge, tol=1e-10)
            # mse_dynamics_iterative is in ntkx's time convention: t / y.size is neural-tangents' t.
            return lambda: dynamics.mse_dynamics_iterative(k, y, times / y.size, tol=1e-10).train
        if peer == "numpy_eigh":
            return lambda: np.linalg.eigh(k)
        if peer == "numpy_cholesky":
            import scipy.linalg

            a = k + self.ridge * np.eye(self.n)
            return lambda: scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), y)
        if peer == "neural_tangents":
            raise PeerSkipped(NT_PREDICT)
        raise ValueError(f"unknown dynamics peer {peer!r}")

    def check(self, peer: str, out: Any) -> Check:
        k, y = self.inputs()
        if self.path == "cg" or peer == "numpy_cholesky":
            x = np.asarray(getattr(out, "x", out))
            res = np.linalg.norm(y - (k @ x + self.ridge * x)) / np.linalg.norm(y)
            return Check("relative residual of (K + ridge I) x = y", res, TOL["iterative"])
        if peer == "numpy_eigh":
            lam, v = out
            err = np.linalg.norm(k @ v - v * lam) / np.linalg.norm(k)
            return Check("||K V - V diag(lam)|| / ||K||", err, TOL["solve"])
        ref = _dense_dynamics(self.n, self.seed, tuple(self.times))
        err = np.linalg.norm(np.asarray(out) - ref) / np.linalg.norm(ref)
        tol = TOL["iterative"] if self.path == "lanczos" else TOL["solve"]
        return Check("dense formula by numpy's eigh (relative Frobenius)", err, tol)


@dataclasses.dataclass(frozen=True)
class PrecomputeCase:
    """Throughput of a float32 NNGP + NTK store of ``fc depth=3`` on n points in R^64, tile by tile.

    Peers: ``fc_kernels_memmap`` (``fc_kernels(..., out=`` two float32 ``.npy`` memmaps ``)``, the
    baseline), ``precompute_local`` (``ntkx.precompute`` to a local Zarr store, 2 worker threads)
    and ``precompute_dask`` (the same on a Dask LocalCluster of 2 single-threaded worker
    processes, started before the timed calls, each worker's backend on cores / 2 threads).
    Every call starts from an empty folder (a store left in place would be resumed, not computed).
    """

    suite: str
    n: int
    tile: int
    d: int = 64
    depth: int = 3
    peers: Tuple[str, ...] = ("fc_kernels_memmap", "precompute_local", "precompute_dask")
    baseline: str = "fc_kernels_memmap"
    check_points: int = 128
    skip: Tuple[Tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.suite}/N{self.n}-tile{self.tile}"

    @property
    def family(self) -> str:
        return f"{self.suite}/tile{self.tile}"

    @property
    def size(self) -> int:
        return self.n

    @property
    def tiles(self) -> int:
        t = -(-self.n // self.tile)
        return t * (t + 1) // 2

    def params(self) -> Dict[str, Any]:
        return {"N": self.n, "d": self.d, "L": self.depth, "tile": self.tile, "tiles": self.tiles,
                "dtype": "float32", "get": ["nngp", "ntk"]}

    def inputs(self) -> np.ndarray:
        return points(self.n, self.d)

    def entries(self, peer: str) -> int:
        return symmetric_entries(self.n)

    def work(self, peer: str, out: Any = None) -> Work:
        flops = 2.0 * symmetric_entries(self.n) * self.d + symmetric_entries(self.n) * self.depth * RELU_STEP_FLOPS
        return Work(flops, 8.0 * self.n * self.d + 8.0 * self.n**2)

    def build(self, peer: str, x: np.ndarray) -> Callable[[], Any]:
        import ntkx

        spec = ntkx.FcSpec(self.depth)
        folder = tempfile.mkdtemp(prefix="ntkx-bench-")

        def fresh(name: str) -> str:
            path = os.path.join(folder, name)
            shutil.rmtree(path, ignore_errors=True)
            return path

        close: Callable[[], None] = lambda: shutil.rmtree(folder, ignore_errors=True)  # noqa: E731
        if peer == "fc_kernels_memmap":
            def run():
                path = fresh("mm")
                os.makedirs(path)
                outs = {g: np.lib.format.open_memmap(os.path.join(path, f"{g}.npy"), mode="w+", dtype=np.float32,
                                                     shape=(self.n, self.n)) for g in ("nngp", "ntk")}
                ntkx.fc_kernels(x, None, spec, device="cpu", dtype=np.float32, out=outs)
                for a in outs.values():
                    a.flush()
                return outs
        elif peer in ("precompute_local", "precompute_dask"):
            from ntkx import precompute as P

            client = None
            options: Dict[str, Any] = {"device": "cpu"}
            if peer == "precompute_dask":
                try:
                    from distributed import Client, LocalCluster
                except ImportError:
                    close()
                    raise PeerSkipped("dask.distributed is not installed (pip install 'ntkx[distributed]')") from None
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
                client = Client(cluster)
                options["threads"] = max(1, (os.cpu_count() or 2) // 2)

                def close():  # noqa: F811
                    client.close()
                    cluster.close()
                    shutil.rmtree(folder, ignore_errors=True)

            def run():
                res = P.precompute(spec, x, store=fresh("K.zarr"), tile=self.tile, dtype=np.float32,
                                   scheduler=client, progress=False, **options)
                return res
        else:
            close()
            raise ValueError(f"unknown precompute peer {peer!r}")
        run.close = close
        return run

    def check(self, peer: str, out: Any) -> Check:
        m = min(self.n, self.check_points)
        nngp_ref, ntk_ref = _fc_reference(m, self.d, self.depth, 1.0, 0)
        if peer == "fc_kernels_memmap":
            nngp, ntk = out["nngp"][:m, :m], out["ntk"][:m, :m]
        else:
            nngp, ntk = out.open("nngp")[:m, :m], out.open("ntk")[:m, :m]
        err = max(max_rel(nngp, nngp_ref), max_rel(ntk, ntk_ref))
        return Check(f"numpy_recursion on the first {m} points (float32 store)", err, TOL["float32"])
