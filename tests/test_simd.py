"""Reading vectorization facts from assembly."""
import numpy as np

from mathbench.functions import kernels

PACKED_AVX = """
\tvmovups\t(%rdi,%rax,4), %ymm1
\tvmulps\t%ymm1, %ymm1, %ymm2
\tvsqrtps\t%ymm2, %ymm2
\tvdivps\t%ymm2, %ymm1, %ymm1
"""
SCALAR = """
\tvmovss\t(%rdi,%rax,4), %xmm0
\tvmulss\t%xmm0, %xmm0, %xmm1
\tvsqrtss\t%xmm1, %xmm1, %xmm1
"""
LIBM_LOOP = """
\tvmovups\t(%rdi,%rax,4), %ymm0
\tmovabsq\t$tanhf, %rax
\tcallq\t*%rax
\tvmulps\t%ymm1, %ymm1, %ymm2
"""


def test_packed_avx_is_vectorized_256():
    assert kernels.simd_info(PACKED_AVX, "x86_64") == {"vectorized": True, "simd_bits": 256, "libm_calls": ""}


def test_scalar_sse_is_not_vectorized():
    assert kernels.simd_info(SCALAR, "x86_64")["vectorized"] is False


def test_libm_call_loop_is_not_vectorized_math():
    info = kernels.simd_info(LIBM_LOOP, "x86_64")
    assert info["vectorized"] is False and info["libm_calls"] == "tanhf"


def test_unknown_architecture_says_unknown():
    assert kernels.simd_info(PACKED_AVX, "riscv64")["vectorized"] is None


def test_real_kernels_on_this_machine():
    # the point of the suite: sqrt/div formulas vectorize, libm calls do not (no SVML)
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return
    isru = kernels.get("isru", "numba", "forward", "float32")
    tanh = kernels.get("tanh", "numba", "forward", "float32")
    assert isru.vectorized is True and isru.simd_bits >= 128
    assert tanh.vectorized is False and "tanhf" in tanh.libm_calls
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    out = np.empty_like(x)
    isru.call(x, isru.param, out)
    np.testing.assert_allclose(out, x / np.sqrt(1 + x * x), rtol=1e-6)
