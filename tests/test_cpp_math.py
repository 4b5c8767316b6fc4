"""The C++ tests of csrc/tests, built with CMake (NTKX_BUILD_TESTS=ON) and run.

test_math_lanes checks that math/'s formulas instantiated on simd8's eight-lane
vector (the OpenMP CNTK's hot loop) and on double (the CUDA phase bodies, the
emulator) agree bit for bit. It is compiled with the module's compile options, in a
build directory of its own (CUDA off: only the one test source is compiled).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cxx_compiler() -> str | None:
    """The C++ compiler CMake would find first (CXX, then c++ / g++ / clang++), or None."""
    names = [os.environ["CXX"].split()[0]] if os.environ.get("CXX") else []
    for name in [*names, "c++", "g++", "clang++"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cpp_tests(tmp_path_factory) -> Path:
    """Configures CMakeLists.txt with NTKX_BUILD_TESTS=ON and builds the test; returns its path."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not on PATH")
    cxx = _cxx_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (CXX, c++, g++ or clang++) is on PATH")
    try:
        import pybind11
    except ImportError:
        pytest.skip("pybind11 (which CMakeLists.txt needs to configure) is not installed")
    build = tmp_path_factory.mktemp("cpp_tests")
    configure = _run(
        [
            cmake, "-S", str(ROOT), "-B", str(build),
            "-DNTKX_BUILD_TESTS=ON", "-DNTKX_CUDA=OFF", "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_CXX_COMPILER={cxx}", f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        ],
        timeout=120,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    built = _run([cmake, "--build", str(build), "--target", "ntkx_test_math_lanes"], timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    exe = build / "ntkx_test_math_lanes"
    assert exe.is_file(), f"no {exe} after the build"
    return exe


def test_simd_and_scalar_formulas_agree_bit_for_bit(cpp_tests: Path):
    out = subprocess.run([str(cpp_tests)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert " 0 mismatches" in out.stdout, out.stdout
