"""The numba_simd target lines of the summary: the right row, the right baseline column, and a
verdict that follows the interval (whole interval above the target, only the median, or neither)."""
import pandas as pd
import pytest

from mathbench.report import tables as report


def _row(function, dtype, size, **cols):
    return dict(function=function, impl="numba_simd", form="forward", dtype=dtype, size=size, parallel=False,
                **cols)


@pytest.mark.parametrize("value,lo,hi,verdict", [
    (4.5, 4.1, 4.9, "meets the >= 4x target"),
    (4.2, 3.6, 4.9, "meets on the median the >= 4x target"),
    (3.9, 3.5, 4.3, "misses the >= 4x target"),
])
def test_tanh_target_verdict_follows_the_interval(value, lo, hi, verdict):
    df = pd.DataFrame([_row("tanh", "float32", 100_000, speedup_vs_np_tanh=value, speedup_vs_np_tanh_lo=lo,
                            speedup_vs_np_tanh_hi=hi)])
    lines = report.simd_findings(df)
    assert len(lines) == 1 and verdict in lines[0] and "np.tanh" in lines[0]


def test_sigmoid_is_judged_on_its_numpy_column_not_np_tanh():
    # a fast row against np.tanh but slow against its own NumPy baseline must miss
    df = pd.DataFrame([_row("sigmoid", "float32", 100_000, speedup_vs_np_tanh=9.0, speedup_vs_np_tanh_lo=8.0,
                            speedup_vs_np_tanh_hi=10.0, speedup_vs_numpy=2.0, speedup_vs_numpy_lo=1.9,
                            speedup_vs_numpy_hi=2.1)])
    (line,) = report.simd_findings(df)
    assert "2.00x" in line and "misses the >= 3x target" in line and "1/(1+np.exp(-x))" in line


def test_roof_line_reports_time_over_copy():
    # roof_fraction = time(copy)/time(kernel): 0.5 means twice the copy loop's time, a miss
    df = pd.DataFrame([_row("exp", "float32", 10_000_000, roof_fraction=0.5, roof_lo=0.4, roof_hi=0.6),
                       _row("tanh", "float32", 10_000_000, roof_fraction=0.9, roof_lo=0.8, roof_hi=1.0)])
    (line,) = report.simd_findings(df)
    assert "tanh 1.11x [1.00, 1.25] (meets)" in line and "exp 2.00x [1.67, 2.50] (misses)" in line


def test_unmeasured_sizes_are_not_judged():
    df = pd.DataFrame([_row("tanh", "float32", 1_000, speedup_vs_np_tanh=9.0, speedup_vs_np_tanh_lo=8.0,
                            speedup_vs_np_tanh_hi=10.0)])
    assert report.simd_findings(df) == []
