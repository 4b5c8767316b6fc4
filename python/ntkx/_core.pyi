"""Type stub of the compiled core (csrc/bindings.cpp)."""
from typing import Any, Optional, Tuple

import numpy as np

class Act:
    ABRelu: "Act"
    ArcCos0: "Act"
    ArcCos2: "Act"
    Erf: "Act"

class FcParams:
    depth: int
    w_std: float
    b_std: float
    act: Act
    a: float
    b: float
    c: float
    def __init__(self) -> None: ...

has_openmp: bool

def fc_panel(params: FcParams, x1: np.ndarray, x2: np.ndarray, sq1: np.ndarray, sq2: np.ndarray,
             gram: np.ndarray, nngp: Optional[np.ndarray], ntk: Optional[np.ndarray], rows: int,
             symmetric: bool, threads: int = 0, pts1: Optional[np.ndarray] = None,
             logq1: Optional[np.ndarray] = None, pts2: Optional[np.ndarray] = None,
             logq2: Optional[np.ndarray] = None, dgemm: Any = None, dsyrk: Any = None,
             lsc1: Optional[np.ndarray] = None, lsc2: Optional[np.ndarray] = None) -> None: ...
def fc_points(params: FcParams, sq: np.ndarray, d: int,
              lsc: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]: ...
def fc_full(params: FcParams, x1: np.ndarray, x2: Optional[np.ndarray], want_nngp: bool, want_ntk: bool,
            backend: str, device: int = 0, reverse: bool = False, lsc1: Optional[np.ndarray] = None,
            lsc2: Optional[np.ndarray] = None) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]: ...
def has_cuda() -> bool: ...
def cuda_device_count() -> int: ...
def openmp_threads() -> int: ...
