"""mathbench.functions.libmvec: Numba kernels calling glibc's vector math library (AVX2 variants).

Checked against NumPy float64 references (float32 kernels, on a strided sample of every float32
bit pattern plus a contiguous run) and long-double references (float64 kernels), special
values, tails, serial = parallel, float32 purity, the ``_ZGV`` call in the assembly, and that a
second process loads the kernel from Numba's cache and still resolves the symbol.
"""
import os
import re
import subprocess
import sys
import warnings

import numba
import numpy as np
import pytest

from mathbench.functions import libmvec

needs_libmvec = pytest.mark.skipif(not libmvec.available(),
                                   reason=f"libmvec not usable: {libmvec.unavailable_reason()}")

# Worst ULP measured on this machine (x86_64, glibc 2.36): float32 on 33M strided bit patterns
# plus 4M points in [-20, 20]; float64 on 3M points (uniform [-30, 30] and log-uniform |x|).
# Bounds leave a small margin above those figures.
BOUNDS = {  # kernel: (float32 ULP, float64 ULP)
    "TANH": (1.25, 2.5),
    "TANH_DFDX_EXP": (5.0, 6.0),
    "EXP": (3.0, 3.5),
    "SIGMOID": (4.0, 4.5),
    "SIGMOID_DFDX": (5.25, 6.0),
    "SOFTPLUS": (3.5, 4.0),
}
ALL = ["TANH", "TANH_DFDX", "TANH_DFDX_EXP", "EXP", "SIGMOID", "SIGMOID_DFDX", "SOFTPLUS"]


def reference(name, x):
    """The exact function in x's precision (float64 or long double); stable forms only."""
    with np.errstate(all="ignore"):
        a = np.abs(x)
        if name == "TANH":
            return np.tanh(x)
        if name == "EXP":
            return np.exp(x)
        if name in ("TANH_DFDX", "TANH_DFDX_EXP"):
            e = np.exp(-2 * a)
            return 4 * e / ((1 + e) * (1 + e))
        e = np.exp(-a)
        if name == "SIGMOID":
            return np.where(x < 0, e, 1) / (1 + e)
        if name == "SIGMOID_DFDX":
            return e / ((1 + e) * (1 + e))
        if name == "SOFTPLUS":
            return np.maximum(x, 0) + np.log1p(e)
    raise KeyError(name)


def ulp_errors(out, ref, dtype):
    """|out - ref| in units of the spacing (in dtype) of ref correctly rounded to dtype."""
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
        err = np.abs(out.astype(ref.dtype) - ref) / np.spacing(np.abs(rounded)).astype(ref.dtype)
    ok = (np.isnan(out) & np.isnan(ref)) | (np.isinf(out) & (out == rounded))
    err = np.where(ok, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)


def run(kernel, x, parallel=False):
    out = np.empty_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (kernel.parallel if parallel else kernel.serial)(x, x.dtype.type(0.5), out)
    return out


def float32_inputs():
    strided = np.arange(0, 2**32, 2**32 // 2**17 + 1, dtype=np.uint64).astype(np.uint32)
    start = int(np.array(0.75, np.float32).view(np.uint32))
    run_ = np.arange(start, start + 2**18, dtype=np.uint32)  # every float32 in [0.75, 0.78)
    x = np.concatenate([strided, run_, run_ | np.uint32(2**31)]).view(np.float32)
    return x[~np.isnan(x)]


def special(dtype):
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, np.inf, -np.inf, np.nan, fi.smallest_subnormal, -fi.smallest_subnormal,
            fi.smallest_normal, -fi.smallest_normal, fi.max, -fi.max, 1e-30, -1e-30, 20.0, -20.0,
            88.7, 89.0, -87.3, -104.0, 709.7, 710.0, -745.0, -746.0]
    with np.errstate(over="ignore"):
        return np.array(vals, dtype=dtype)


def test_available_never_raises():
    assert isinstance(libmvec.available(), bool)
    assert isinstance(libmvec.unavailable_reason(), str)
    assert libmvec.available() == (libmvec.unavailable_reason() == "")


def test_api():
    assert libmvec.KERNELS[("softplus", "dfdx")] is libmvec.SIGMOID
    assert libmvec.KERNELS[("exp", "dfdx")] is libmvec.EXP
    for name in ALL:
        k = getattr(libmvec, name)
        for d in (k.serial, k.parallel):
            assert d.targetoptions["error_model"] == "numpy"
            assert type(d._cache).__name__ == "FunctionCache"  # cache=True
        assert k.parallel.targetoptions["parallel"]


@needs_libmvec
@pytest.mark.parametrize("name", list(BOUNDS))
def test_float32_bit_patterns_within_bound(name):
    x = float32_inputs()
    err = ulp_errors(run(getattr(libmvec, name), x), reference(name, x.astype(np.float64)), np.float32)
    i = int(np.argmax(err))
    assert err[i] <= BOUNDS[name][0], f"{name}: {err[i]:.3g} ULP at x={x[i]!r}"


@needs_libmvec
@pytest.mark.parametrize("name", list(BOUNDS))
def test_float64_within_bound(name):
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(-30, 30, 100_000),
                        rng.choice([-1.0, 1.0], 50_000) * np.exp(rng.uniform(-690, np.log(700), 50_000))])
    err = ulp_errors(run(getattr(libmvec, name), x), reference(name, x.astype(np.longdouble)), np.float64)
    i = int(np.argmax(err))
    assert err[i] <= BOUNDS[name][1], f"{name}: {err[i]:.3g} ULP at x={x[i]!r}"


@needs_libmvec
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_dfdx_one_minus_t_squared_absolute_error(dtype):
    # 1 - t^2 cancels as t -> 1: accurate in absolute terms only.
    x = np.linspace(-30, 30, 200_001).astype(dtype)
    err = np.abs(run(libmvec.TANH_DFDX, x).astype(np.float64) - reference("TANH_DFDX", x.astype(np.float64)))
    assert err.max() <= 2.5 * np.finfo(dtype).eps


@needs_libmvec
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ALL)
def test_special_values(name, dtype):
    x = special(dtype)
    out = run(getattr(libmvec, name), x)
    ref = reference(name, x.astype(np.float64 if dtype == np.float32 else np.longdouble))
    assert np.isnan(out[np.isnan(x)]).all()
    assert not np.isnan(out[~np.isnan(x)]).any()
    if name in BOUNDS:  # saturated, underflowed and overflowed results included
        err = ulp_errors(out, ref, dtype)
        assert err.max() <= BOUNDS[name][dtype == np.float64], (x, out)
    else:
        keep = ~np.isnan(x)
        assert np.abs(out[keep] - ref[keep]).max() <= 2.5 * np.finfo(dtype).eps
    limits = {  # f(+inf), f(-inf)
        "TANH": (1, -1), "TANH_DFDX": (0, 0), "TANH_DFDX_EXP": (0, 0), "EXP": (np.inf, 0),
        "SIGMOID": (1, 0), "SIGMOID_DFDX": (0, 0), "SOFTPLUS": (np.inf, 0),
    }[name]
    assert out[2] == limits[0] and out[3] == limits[1]
    if name == "TANH":  # tanh(±0) = ±0, tanh(tiny) = tiny, including subnormals
        assert np.signbit(out[1]) and not np.signbit(out[0])
        np.testing.assert_array_equal(out[5:9], x[5:9])


@needs_libmvec
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["TANH", "SOFTPLUS"])
def test_tails_serial_parallel_and_no_write_past_n(name, dtype):
    k = getattr(libmvec, name)
    x = np.random.default_rng(1).standard_normal(1000).astype(dtype)
    full = run(k, x)
    np.testing.assert_array_equal(run(k, x, parallel=True), full)
    for n in list(range(0, 20)) + [997]:
        for par in (False, True):
            out = np.full(n + 9, 7.0, dtype=dtype)
            (k.parallel if par else k.serial)(x[:n], dtype(0), out)
            np.testing.assert_array_equal(out[:n], full[:n])
            assert (out[n:] == 7.0).all()


@needs_libmvec
def test_short_out_raises():
    x = np.ones(10, np.float32)
    with pytest.raises(ValueError):
        libmvec.TANH.serial(x, np.float32(0), np.empty(9, np.float32))


def _uncached_twin(dispatcher, dtype):
    """Numba shows no assembly for code loaded from its cache: compile an uncached copy."""
    twin = numba.njit(cache=False, error_model="numpy", nogil=True)(dispatcher.py_func)
    nt = numba.from_dtype(np.dtype(dtype))
    sig = (nt[::1], nt, nt[::1])
    twin.compile(sig)
    return twin, sig


@needs_libmvec
@pytest.mark.parametrize("dtype,symbol", [(np.float32, "_ZGVdN8v_tanhf"), (np.float64, "_ZGVdN4v_tanh")])
def test_assembly_calls_the_vector_function(dtype, symbol):
    twin, sig = _uncached_twin(libmvec.TANH.serial, dtype)
    asm = twin.inspect_asm(sig)
    assert re.search(rf"\$?{symbol}\b", asm)
    assert re.search(r"vmovup[sd]\s+\(.*\),\s*%ymm0", asm)  # the argument goes in ymm0
    assert not re.search(r"\$(tanhf?|expf?)\b", asm)  # no scalar libm call


@needs_libmvec
@pytest.mark.parametrize("name", ALL)
def test_float32_kernels_compute_in_float32(name):
    twin, sig = _uncached_twin(getattr(libmvec, name).serial, np.float32)
    ir = twin.inspect_llvm(sig)
    assert "fpext" not in ir
    assert not re.search(r"\b(fadd|fsub|fmul|fdiv|fneg|fcmp \w+)\b[^=\n]*double", ir)
    assert "_ZGVdN8v_" in ir


@needs_libmvec
def test_second_process_loads_from_cache():
    x = np.linspace(-3, 3, 11, dtype=np.float32)
    out = np.empty_like(x)
    libmvec.TANH.serial(x, np.float32(0), out)  # compiled or loaded here: the cache now exists
    code = (
        "import numpy as np\n"
        "from mathbench.functions import libmvec\n"
        "x = np.linspace(-3, 3, 11, dtype=np.float32); o = np.empty_like(x)\n"
        "libmvec.TANH.serial(x, np.float32(0), o)\n"
        "print(sum(libmvec.TANH.serial.stats.cache_hits.values()), repr(o.tobytes()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert res.returncode == 0, res.stderr
    hits, data = res.stdout.split(" ", 1)
    assert int(hits) == 1
    assert data.strip() == repr(out.tobytes())


def test_unavailable_platforms_say_no(monkeypatch):
    probe = libmvec._probe.__wrapped__  # the uncached check
    monkeypatch.setattr(libmvec.platform, "machine", lambda: "aarch64")
    ok, reason = probe()
    assert not ok and "x86_64" in reason
    monkeypatch.setattr(libmvec.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(libmvec.platform, "system", lambda: "Linux")

    def no_lib(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(libmvec.ctypes, "CDLL", no_lib)
    ok, reason = probe()
    assert not ok and "OSError" in reason
    monkeypatch.setattr(libmvec.llb, "get_host_cpu_features", lambda: {"avx": True, "avx2": False})
    ok, reason = probe()
    assert not ok and "AVX2" in reason


def test_jit_target_without_avx_says_no(monkeypatch):
    # NUMBA_CPU_NAME=generic NUMBA_CPU_FEATURES=+sse2,+64bit compiles the call without AVX: LLVM
    # then passes <8 x float> in xmm0/xmm1, not ymm0, and tanh came out wrong by up to 1.7.
    from numba.core import config

    monkeypatch.setattr(config, "CPU_FEATURES", "+sse2,+64bit")
    ok, reason = libmvec._probe.__wrapped__()
    assert not ok and "NUMBA_CPU_FEATURES" in reason
