"""``python -m mathbench accuracy``: the accuracy of every selected kernel, written as a run folder.

Without ``--exhaustive``: the dense grid of :mod:`mathbench.accuracy.measure` against mpmath (seconds).
With it: every float32 input and a 1e8-point float64 grid (:mod:`mathbench.accuracy.exhaustive`; about
two minutes per float32 kernel on two cores). One row per (function, implementation, form,
dtype), written as each kernel finishes; running again with the same ``--out`` resumes.
"""
from __future__ import annotations

import argparse
import math
import time

from .accuracy import exhaustive
from .functions import registry
from .core import runs
from .core.cliargs import choices, progress_factory, split_list
from .core.errors import ArgumentParser, UsageError

# the histogram, one column per bin: errors <= 0.5 ulp, <= 1, ...; the last bin includes inf
_BINS = [f"n_ulp_le_{e:g}" for e in exhaustive.EDGES[1:-1]] + [f"n_ulp_over_{exhaustive.EDGES[-2]:g}"]
GRID_INPUT_SET = "grid (mathbench.accuracy)"  # as earlier runs wrote it: a resumed folder stays uniform
COLUMNS = ["function", "impl", "backend", "form", "dtype", "mode", "input_set", "n_inputs", "max_ulp",
           "worst_x", "worst_x_hex", "worst_out", "worst_ref", "ulp_beyond_abs", "worst_x_beyond_abs", "max_abs",
           "n_fail", "n_special_mismatch", "bound_ulp", "bound_abs", "within_bound", "seconds", *_BINS]

DESCRIPTION = """\
Measure the accuracy of kernels against a high-precision reference and write a run folder
(results.csv + metadata.json; default runs/accuracy-TIMESTAMP). Default: the dense grid against
mpmath. --exhaustive: every float32 input (all 2^32 bit patterns; for g(y) every float32 in the
range of f) against a float64 reference, and a 1e8-point float64 grid (special values and both
sides of every range-reduction boundary included) against a long-double reference; each row has
the worst ULP error, the input where it occurs, a histogram and within_bound (the implementation's
declared bound). About 2 minutes per float32 kernel on 2 cores; run again with the same --out to
resume an interrupted run."""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="mathbench accuracy", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exhaustive", action="store_true", help="every float32 input / 1e8-point float64 grid")
    p.add_argument("--functions", default=",".join(registry.DEFAULT),
                   help="comma-separated registry names (default: %(default)s)")
    p.add_argument("--implementations", help="comma-separated implementation names (default: every Numba and "
                   "NumPy implementation of the functions)")
    p.add_argument("--forms", default="forward,dfdx,dfdy", help="forward, dfdx, dfdy (default: all)")
    p.add_argument("--dtypes", default="float32,float64", help="float32, float64 (default: both)")
    p.add_argument("--f64-points", type=float, default=1e8, help="float64 grid size with --exhaustive (default 1e8)")
    p.add_argument("--out", help="run folder (default runs/accuracy-TIMESTAMP); an unfinished one is resumed")
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    return p


def plan(args) -> list[tuple]:
    functions = split_list(args.functions, "functions")
    acts = [registry.get(f) for f in functions]  # UnknownName lists the valid names
    forms = choices(args.forms, "forms", registry.FORMS, "form")
    dtypes = choices(args.dtypes, "dtypes", registry.DTYPES, "dtype")
    wanted = None if args.implementations is None else choices(
        args.implementations, "implementations", registry.all_impl_names(), "implementation")
    if not (math.isfinite(args.f64_points) and 1e3 <= args.f64_points <= 1e10):
        raise UsageError("--f64-points must be a number from 1e3 to 1e10")
    todo = []
    for act in acts:
        if args.exhaustive and not act.ref64:
            raise UsageError(f"{act.name} has no wide-precision reference for --exhaustive; covered: "
                             + ", ".join(a.name for a in registry.REGISTRY.values() if a.ref64))
        for im in act.impls.values():
            if im.backend == "torch" or (wanted and im.name not in wanted):
                continue
            for form in forms:
                if im.fn(form) is None or (args.exhaustive and form not in act.ref64):
                    continue
                todo += [(act.name, im.name, im.backend, form, dt) for dt in dtypes]
    if not todo:
        raise UsageError("nothing to check: no selected implementation has the selected forms")
    return todo


def _grid_row(function, impl, form, dtype) -> dict:
    from .accuracy import measure as accuracy

    t0 = time.perf_counter()
    m = accuracy.measure_impl(function, impl, form, dtype)
    return dict(input_set=GRID_INPUT_SET, n_inputs=m["n_points"], max_ulp=m["max_ulp"],
                worst_x=m["worst_x"], worst_out=m["worst_out"], worst_ref=m["worst_ref"],
                ulp_beyond_abs=m["ulp_beyond_abs"], max_abs=m["max_abs"], n_fail=m["n_fail"],
                n_special_mismatch=m["n_special_mismatch"], bound_ulp=m["bound_ulp"], bound_abs=m["bound_abs"],
                within_bound=m["within_bound"], seconds=time.perf_counter() - t0)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    todo = plan(args)
    run_dir = runs.new_run_dir("accuracy", args.out, resume=True)
    done = set()
    if (run_dir / runs.RESULTS).exists():
        df = runs.load_run(run_dir)[0]
        done = {tuple(r) for r in df[["function", "impl", "form", "dtype", "mode"]].astype(str).itertuples(index=False)}
    mode = "exhaustive" if args.exhaustive else "grid"
    command = "python -m mathbench accuracy " + " ".join(argv)
    if (run_dir / runs.METADATA).exists():  # resumed: keep the first session's record, add this one
        meta = runs.read_metadata(run_dir)
        meta.setdefault("sessions", []).append(runs.metadata("accuracy", argv, command=command))
    else:
        meta = runs.metadata("accuracy", argv)
        meta["command"] = command
    meta["finished"] = False
    runs.write_json(run_dir / runs.METADATA, meta)
    left = [t for t in todo if (t[0], t[1], t[3], t[4], mode) not in done]
    points = int(args.f64_points)
    total = sum(exhaustive.n_jobs(t[4], f64_points=points) for t in left) if args.exhaustive else len(left)
    bar = progress_factory(args.no_progress)(total=total, desc="accuracy")
    t0 = time.perf_counter()
    with runs.ResultsWriter(run_dir, COLUMNS) as writer:
        for function, impl, backend, form, dtype in left:
            bar.set_postfix_str(f"{function}:{impl} {form} {dtype}")
            if args.exhaustive:
                row = exhaustive.check(function, impl, form, dtype, f64_points=points, progress=bar.update)
                hist = row.pop("hist")
                row.update(zip(_BINS, hist.tolist()))
            else:
                row = _grid_row(function, impl, form, dtype)
                bar.update(1)
            row.update(function=function, impl=impl, backend=backend, form=form, dtype=dtype, mode=mode)
            writer.write(row)
    bar.close()
    meta.update(finished=True, wall_seconds=time.perf_counter() - t0, kernels_checked=len(left),
                kernels_resumed=len(todo) - len(left))
    runs.write_json(run_dir / runs.METADATA, meta)
    print(summary(run_dir))
    print(f"results: {run_dir}/{runs.RESULTS} and {runs.METADATA}")
    return 0


def summary(run_dir) -> str:
    from .report.tables import table

    df = runs.load_run(run_dir)[0]
    rows = [[r.function, r.impl, r.form, r.dtype, r.mode, f"{int(r.n_inputs):,}", f"{r.max_ulp:.3g}",
             f"{r.worst_x:.9g}", f"{r.ulp_beyond_abs:.3g}", f"{r.bound_ulp:g}/{r.bound_abs:.2g}",
             "yes" if str(r.within_bound) == "True" else "NO"] for r in df.itertuples()]
    return table(rows, ["function", "implementation", "form", "dtype", "inputs", "n", "max ulp", "at x",
                        "ulp beyond abs", "bound ulp/abs", "within"])
