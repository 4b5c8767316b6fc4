"""ntkx: exact infinite-width neural network kernels, fast, on OpenMP and CUDA."""
from importlib.metadata import PackageNotFoundError, version

from ntkx import _core
from ntkx._src.cntk import CntkSpec, ConvLayer, arora_cntk, cntk_kernels
from ntkx._src.fc import Activation, FcSpec, Kernel, Kernels, fc_kernels
from ntkx._src.nt_api import batch, empirical_kernel_fn

try:
    __version__ = version("ntkx")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Activation", "CntkSpec", "ConvLayer", "FcSpec", "Kernel", "Kernels", "arora_cntk", "batch", "cntk_kernels",
    "empirical_kernel_fn", "fc_kernels",
    "build_info", "__version__",
]


def build_info() -> dict:
    """What the compiled core was built with and what this machine offers."""
    return {
        "openmp": bool(_core.has_openmp),
        "openmp_threads": _core.openmp_threads(),
        "cuda_built": _core.has_cuda(),
        "cuda_devices": _core.cuda_device_count(),
    }
