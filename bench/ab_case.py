"""One bench case for an interleaved A/B of two ntkx installs (bench/ab_run.sh): python ab_case.py NAME REPS prints "NAME median_s" after one warm call."""
import sys, time
import numpy as np
import ntkx
from ntkx import FcSpec

name, reps = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)

def fc(n, d, L, dtype):
    x = rng.standard_normal((n, d))
    spec = FcSpec(L)
    return lambda: ntkx.fc_kernels(x, None, spec, get=("nngp", "ntk"), device="cpu", dtype=dtype)

def cntk(n, depth, readout):
    x = rng.standard_normal((n, 32, 32, 3))
    return lambda: ntkx.arora_cntk(x, None, depth=depth, readout=readout, device="cpu")

def mse(n):
    from ntkx import dynamics
    x = rng.standard_normal((n, 16)); y = rng.standard_normal((n, 1))
    k = ntkx.fc_kernels(x, None, FcSpec(3), get="ntk", device="cpu")
    return lambda: dynamics.MSEDynamics(k, y).train_outputs(np.array([1.0, 10.0]))

def cg(n):
    from ntkx import dynamics
    x = rng.standard_normal((n, 16)); y = rng.standard_normal((n, 1))
    k = ntkx.fc_kernels(x, None, FcSpec(3), get="ntk", device="cpu")
    return lambda: dynamics.cg_solve(k, y, ridge=1e-2, tol=1e-8)

def fc_small(n, d, L):
    x = rng.standard_normal((n, d))
    return lambda: ntkx.fc_kernels(x, None, FcSpec(L, 1.4, 0.1), device="cpu")

def cntk_tiles(n):
    x = rng.standard_normal((n, 8, 8, 3))
    spec = ntkx.CntkSpec(convs=(ntkx.ConvLayer(),) * 3, readout="gap")
    return lambda: ntkx.cntk_kernels(x, spec=spec, device="cpu", memory_budget=1 << 18)

CASES = {
    "fc_N100_d16_L3_f64": lambda: fc_small(100, 16, 3),
    "fc_deep_N600_d16_L2000_f64": lambda: fc_small(600, 16, 2000),
    "cntk_gap_n12_tiles": lambda: cntk_tiles(12),
    "fc_N4000_d784_L10_f64": lambda: fc(4000, 784, 10, np.float64),
    "fc_N4000_d32_L10_f64": lambda: fc(4000, 32, 10, np.float64),
    "fc_N4000_d64_L3_f32": lambda: fc(4000, 64, 3, np.float32),
    "cntk_gap_n6_32x32x3_L5": lambda: cntk(6, 5, "gap"),
    "cntk_van_n16_32x32x3_L5": lambda: cntk(16, 5, "vanilla"),
    "mse_eigh_N2000": lambda: mse(2000),
    "cg_N3000": lambda: cg(3000),
}
f = CASES[name]()
f()
ts = []
for _ in range(reps):
    t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
print(name, float(np.median(ts)))
