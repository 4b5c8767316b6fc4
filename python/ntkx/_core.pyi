"""Type stub of the compiled core (csrc/bindings.cpp); tests/test_core_stub.py keeps it in step."""
from typing import Callable, Optional, Sequence

import numpy as np

class Act:
    ABRelu: "Act"
    ArcCos0: "Act"
    ArcCos2: "Act"
    Erf: "Act"
    Sign: "Act"
    ArcCosN: "Act"
    Monomial: "Act"
    Hermite: "Act"
    ExpNormalized: "Act"
    Gelu: "Act"
    Sin: "Act"
    Rbf: "Act"
    Exp: "Act"
    Gaussian: "Act"
    Polynomial: "Act"

class Readout:
    Vanilla: "Readout"
    Gap: "Readout"

class Backend:
    cpu: "Backend"
    emulate: "Backend"
    cuda: "Backend"

class RunOptions:
    backend: Backend
    device: int
    threads: int
    budget: int
    reverse: bool
    def __init__(self, backend: Backend = ..., device: int = 0, threads: int = 0, budget: int = 0,
                 reverse: bool = False) -> None: ...

class FcParams:
    depth: int
    w_std: float
    b_std: float
    act: Act
    a: float
    b: float
    c: float
    def __init__(self) -> None: ...

class CntkParams:
    @property
    def P(self) -> int: ...
    @property
    def Q(self) -> int: ...
    @property
    def C(self) -> int: ...
    @property
    def n_conv(self) -> int: ...
    @property
    def n_act(self) -> int: ...
    @property
    def n_fields(self) -> int: ...
    @property
    def standard(self) -> bool: ...
    def __init__(self, P: int, Q: int, C: int, w_std: Sequence[float], b_std: Sequence[float],
                 filt: Sequence[int], final_act: bool, act: Act, a: float, b: float, c: float,
                 readout: Readout, out_w_std: float, out_b_std: float, train_first: bool = True,
                 train_last: bool = True, std_fan_in: Sequence[float] = ..., std_beta: Sequence[float] = ...,
                 out_nin: float = 0.0, out_beta: float = 0.0) -> None: ...

has_openmp: bool

def fc(params: FcParams, x1: np.ndarray, x2: Optional[np.ndarray], sq1: np.ndarray, sq2: Optional[np.ndarray],
       nngp: Optional[np.ndarray], ntk: Optional[np.ndarray], run: RunOptions,
       lsc1: Optional[np.ndarray] = None, lsc2: Optional[np.ndarray] = None,
       gram: Optional[Callable[[int, int, int, np.ndarray], None]] = None,
       progress: Optional[Callable[[int], None]] = None, w_layers: Optional[np.ndarray] = None,
       b_layers: Optional[np.ndarray] = None, program: Optional[tuple] = None) -> None: ...
def cntk(params: CntkParams, x1: np.ndarray, x2: np.ndarray, nngp: Optional[np.ndarray],
         ntk: Optional[np.ndarray], symmetric: bool, run: RunOptions,
         progress: Optional[Callable[[int], None]] = None) -> None: ...
def cntk_maps(params: CntkParams, x: np.ndarray) -> np.ndarray: ...
def has_cuda() -> bool: ...
def cuda_device_count() -> int: ...
def openmp_threads() -> int: ...
