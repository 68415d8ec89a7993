"""``python -m mathbench``: the kernel benchmark, and the ``verify``, ``compare`` and ``report``
subcommands."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from . import bench
from .functions import registry
from .core import runs, threads
from .core.cliargs import choices, positive_ints, progress_factory, split_list
from .core.errors import RESUMABLE, ArgumentParser, UsageError

MAX_BUDGET = 3600.0  # seconds per (dtype, size) group
MAX_SAMPLES = 10_000
MAX_PROCESSES = 100

DESCRIPTION = """\
Time activation functions and their derivatives as Numba kernels (float32/float64, serial and
parallel) against NumPy (and torch with the 'peers' extra), across array sizes, with accuracy
against an mpmath reference. Each run writes runs/mathbench-TIMESTAMP/results.csv (one row per
function x form x implementation x dtype x size x threads; runs/ of the project checkout, ignored by
git, else of the current folder; --out chooses another folder), samples.csv (each process's
per-round timings behind every row) and metadata.json (machine, versions, threads, command), then
prints a summary. Compiled kernels are cached in $MATHBENCH_CACHE_DIR
(default ~/.cache/mathbench). JIT compile time is measured separately and never
inside a timing; every ratio (speedup over tanh, over np.tanh, over serial, cost relative to x+c,
fraction of the copy roof) is paired by round within one interleaved measurement. The timing runs in
--processes fresh worker processes, one after another, each with its share of the budget; a row is
the geometric mean of the processes' medians with a Student-t 95% interval across them, so it
includes the spread between runs (with one process: an interval within it, labelled as such).
The options below are those of the default subcommand, run; the others are listed after them
(mathbench COMMAND -h for each).
"""

EPILOG = """\
examples:
  python -m mathbench                        default run: tanh, isru, softplus, sigmoid, exp, isru_sigmoid
  python -m mathbench --all                  every registry entry
  python -m mathbench --quick                smoke run (a few seconds)
  python -m mathbench --functions isru,tanh --dtypes float32 --sizes 1e3,1e5 --threads 1
  python -m mathbench --list                 what the registry holds
"""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="mathbench", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--functions", help=f"comma-separated registry names (default: {','.join(registry.DEFAULT)})")
    p.add_argument("--all", action="store_true", help="every registry entry")
    p.add_argument("--implementations", help="comma-separated: numba, numba_rational, numba_pow, numpy, torch "
                   "(default: all available; torch if installed)")
    p.add_argument("--forms", default="forward,dfdx,dfdy",
                   help="forward, dfdx (f'(x)), dfdy (backprop form g(y) = f'(x) from y = f(x)); default all")
    p.add_argument("--dtypes", help="float32, float64 (default both)")
    p.add_argument("--sizes", help="array sizes, e.g. 10,1e3,1e5 (default 10..1e7, one per decade)")
    p.add_argument("--threads", help="thread counts: 1 = serial kernels, N > 1 = prange kernels on N threads "
                   f"(default 1,{threads.max_threads()}); one parallel count per run")
    p.add_argument("--budget", type=float,
                   help="seconds of timed rounds per (dtype, size) group, split between the --processes "
                        "(default 0.7, --quick 0.2); at large sizes rounds are cut to fit but never below 3 "
                        "in all (at least one per process)")
    p.add_argument("--samples", type=int,
                   help="rounds per group in each process when the budget allows (default 7, --quick 5)")
    p.add_argument("--processes", type=int, default=3,
                   help="fresh worker processes that each time every group, one after another, with the "
                        "budget split between them; intervals are Student-t 95%% across them (default 3; "
                        "1: intervals within one process, not of run-to-run spread)")
    p.add_argument("--seed", type=int, default=0, help="input RNG seed (default 0)")
    p.add_argument("--scale", type=float, default=1.0, help="inputs are scale * N(0, 1) (default 1)")
    p.add_argument("--denormals", action="store_true", help="make every 7th input subnormal")
    p.add_argument("--no-accuracy", action="store_true", help="skip the accuracy columns")
    p.add_argument("--out", help="run folder to create (default runs/mathbench-TIMESTAMP); never overwritten")
    p.add_argument("--quick", action="store_true", help="smoke run: tanh and isru, float32, two sizes, serial")
    p.add_argument("--list", action="store_true", help="list the registry and exit")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress on stderr (by default a bar on a terminal, a few plain lines otherwise)")
    return p


def list_registry() -> str:
    from .report.tables import table

    rows = []
    for a in registry.REGISTRY.values():
        for im in a.impls.values():
            rows.append([a.name, a.group, im.name, im.backend, "libm" if im.libm else "",
                         "yes" if a.has_backprop_form else "no",
                         f"{a.param}={a.param_default:g}" if a.param else "", im.note or a.description])
    return table(rows, ["function", "group", "implementation", "backend", "libm", "g(y)", "parameter", "note"])


def make_plan(args) -> bench.Plan:
    if args.quick:
        functions, impls, dtypes = ["tanh", "isru"], ["numba", "numba_rational", "numpy"], ["float32"]
        sizes, thread_counts, budget, samples = [1_000, 100_000], [1], 0.2, 5
    else:
        functions = list(registry.REGISTRY) if args.all else list(registry.DEFAULT)
        impls, dtypes, sizes = None, list(registry.DTYPES), list(bench.DEFAULT_SIZES)
        thread_counts = sorted({1, threads.max_threads()})
        budget, samples = 0.7, 7
    # explicit values win over --quick's; an explicitly empty list is an error, never the default
    budget = budget if args.budget is None else args.budget
    samples = samples if args.samples is None else args.samples
    if args.functions is not None:
        functions = split_list(args.functions, "functions")
    for f in functions:
        registry.get(f)  # UnknownName lists the valid names
    if args.implementations is not None:
        impls = choices(args.implementations, "implementations", registry.all_impl_names(), "implementation")
        if "torch" in impls and not bench.kernels.torch_available():
            raise UsageError("torch is not installed; install the peers extra: pip install -e '.[peers]'")
    if args.dtypes is not None:
        dtypes = choices(args.dtypes, "dtypes", registry.DTYPES, "dtype")
    forms = choices(args.forms, "forms", registry.FORMS, "form")
    if args.sizes is not None:
        sizes = positive_ints(args.sizes, "sizes")
    if args.threads is not None:
        thread_counts = sorted(positive_ints(args.threads, "threads"))
        for t in thread_counts:
            if not 1 <= t <= threads.max_threads():
                raise UsageError(f"thread count {t} out of range 1..{threads.max_threads()}")
    parallel = [t for t in thread_counts if t > 1]
    if len(parallel) > 1:
        raise UsageError("one parallel thread count per run (e.g. --threads 1,2); run again for another")
    # Bounds that keep the harness's arithmetic finite (a budget of inf or 1e300 overflows its
    # repeat counts) and the inputs finite in every selected dtype (scale * N(0, 1) up to ~10 sigma).
    if not 0 < budget <= MAX_BUDGET:
        raise UsageError(f"--budget {budget:g}: must be a number of seconds in (0, {MAX_BUDGET:g}]")
    if not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"--samples {samples}: must be 1..{MAX_SAMPLES}")
    processes = args.processes
    if not 1 <= processes <= MAX_PROCESSES:
        raise UsageError(f"--processes {processes}: must be 1..{MAX_PROCESSES}")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be 0 or positive")
    top = min(float(np.finfo(d).max) for d in dtypes) / 10
    if not 0 < args.scale <= top:
        raise UsageError(f"--scale {args.scale:g}: must be positive and finite, at most {top:.3g} "
                         f"for {', '.join(dtypes)}")
    plan = bench.Plan(functions=functions, impls=impls, forms=forms, dtypes=dtypes, sizes=sizes,
                      serial=1 in thread_counts, parallel_threads=parallel[0] if parallel else None,
                      budget=budget, samples=samples, min_samples=min(3, samples), seed=args.seed,
                      scale=args.scale, denormals=args.denormals, accuracy=not args.no_accuracy,
                      processes=processes)
    if bench.count_kernels(plan) == 0:
        raise UsageError("nothing to measure: no selected implementation has the selected forms")
    return plan


def main_bench(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print(list_registry())
        return 0
    plan = make_plan(args)
    bench.check_memory(plan.sizes, plan.dtypes)
    run_dir = runs.new_run_dir("mathbench", args.out)
    meta = runs.metadata("mathbench", argv, plan={k: v for k, v in vars(plan).items() if k != "kernels"})
    meta.update(command="python -m mathbench " + " ".join(argv), finished=False)  # True once every group is in
    try:
        runs.write_json(run_dir / runs.METADATA, meta)
    except UsageError:
        runs.abandon(run_dir)  # nothing was written: leave no empty folder behind
        raise
    try:
        with runs.ResultsWriter(run_dir, runs.SAMPLE_COLUMNS, name=runs.SAMPLES) as samples, \
                runs.ResultsWriter(run_dir, bench.COLUMNS) as writer:
            info = bench.run(plan, writer, progress_factory(args.no_progress), samples_writer=samples)
    except bench.WorkerFailed as e:
        raise UsageError(f"{e}; the groups every process finished are in {run_dir} (marked incomplete)") from None
    except KeyboardInterrupt:
        # groups are not resumable (inputs come from one seeded stream): say what is true
        raise KeyboardInterrupt(f"interrupted; the groups finished so far are in {run_dir} (marked incomplete; "
                                "a kernel run cannot be resumed, run it again in full)") from None
    meta.update(timing=info, threads=threads.thread_info(), finished=True)
    runs.record_end_state(meta)
    runs.write_json(run_dir / runs.METADATA, meta)
    from .report.tables import load_summary

    print(load_summary(run_dir))
    print(f"\ncompile: {info['kernels_compiled']} kernels compiled, {info['kernels_from_cache']} loaded from cache, "
          f"{info['compile_wall_seconds']:.1f} s (never inside a timing); total {info['wall_seconds']:.1f} s "
          "(metadata timing.wall_seconds)")
    print(f"results: {run_dir}/{runs.RESULTS} and {runs.METADATA}")
    return 0


def main_compare(argv: list[str]) -> int:
    p = ArgumentParser(prog="mathbench compare",
                       usage="mathbench compare [-h] [--csv FILE] [--missing-csv FILE] [--html FILE] "
                             "RUN_1 RUN_2 [RUN_N ...]",
                       description="Per-row speedup of each later run over the first (time 1 / time K) with a "
                                   "conservative interval from both runs' intervals (the header names each run's "
                                   "interval method, CPU, threads, Numba version and commit); rows whose intervals "
                                   "do not overlap are flagged; rows not in every run are counted per "
                                   "implementation, dtype and thread count (--missing-csv lists each).")
    p.add_argument("runs", metavar="RUN", nargs="*", help="run folders, at least two: RUN_1 the reference, every "
                   "later one compared with it (in the text with two runs: A and B)")
    p.add_argument("--csv", metavar="FILE", help="also write the comparison to this CSV file (must not exist; with "
                   "more than two runs the long table: one row per run and row)")
    p.add_argument("--missing-csv", metavar="FILE", help="also write every row not in every run to this CSV file "
                   "(must not exist): its key, in_runs and missing_from (runs numbered as given, 1 = RUN_1)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page (must not exist): per "
                   "function a chart of the speedup over NumPy across sizes, one line per run")
    args = p.parse_args(argv)
    if len(args.runs) < 2:  # nargs="*": argparse itself would name the metavar, not the rule
        raise UsageError(f"compare needs at least two run folders (RUN_1 RUN_2 [RUN_N ...]); got {len(args.runs)}")
    from .report import compare, html

    # refused before any work: earlier results are never overwritten, and two outputs never share a file
    targets = {name: html.check_target(path) for name, path in
               (("csv", args.csv), ("missing-csv", args.missing_csv), ("html", args.html)) if path}
    seen = {}
    for name, path in targets.items():
        other = seen.setdefault(os.path.realpath(path), name)
        if other != name:
            raise UsageError(f"--{other} and --{name} name the same file {path}: choose two")
    df, text, loaded, missing = compare.compare_runs(args.runs)
    # every output is built before any is written: a failure while drawing leaves no file behind
    out = {"csv": lambda: df.to_csv(index=False), "missing-csv": lambda: compare.missing_csv(missing, len(loaded)),
           "html": lambda: compare.html_page(loaded, text)}
    texts = {name: out[name]() for name in targets}
    for name, path in targets.items():
        html.write_page(path, texts[name])
    print(text)
    return 0


def main_export(argv: list[str]) -> int:
    p = ArgumentParser(prog="mathbench export",
                       description="Write a run's timings in another tool's format: --pyperf, pyperf's JSON "
                                   "(one benchmark per row, named function/form/impl/dtype/size/threads; values in "
                                   "seconds per call: each worker process's rounds from samples.csv, one pyperf "
                                   "run per process, or for older runs one value, the row's seconds per call; see "
                                   "mathbench.report.pyperf_export), for python -m pyperf stats / compare_to.")
    p.add_argument("run", help="a mathbench run folder")
    p.add_argument("--pyperf", metavar="FILE.json", required=True, help="the pyperf JSON file to write (must not "
                   "exist)")
    args = p.parse_args(argv)
    from .report import html, pyperf_export

    target = html.check_target(args.pyperf)  # refused before any work
    notes = []
    html.write_page(target, pyperf_export.export(args.run, notes))
    print(f"pyperf JSON: {target}")
    for line in notes:  # rows without samples: one value each (older runs)
        print(line, file=sys.stderr)
    return 0


def main_report(argv: list[str]) -> int:
    p = ArgumentParser(prog="mathbench report", description="Print the summary of a run folder, or with --html "
                       "write it as one self-contained web page (figures embedded, opens offline).")
    p.add_argument("run")
    p.add_argument("--html", metavar="FILE", help="write an HTML page (machine, settings, findings, figures, "
                   "summary tables, command) to FILE, which must not exist")
    p.add_argument("--accuracy", metavar="RUN", help="with --html: draw speed against the max errors of this "
                   "'mathbench accuracy' run (e.g. results/accuracy-exhaustive) instead of the run's own grid check")
    args = p.parse_args(argv)
    if args.html:
        from .report import html, run_page

        html.check_target(args.html)  # refuse before drawing anything
        print(f"wrote {html.write_page(args.html, run_page.build(args.run, args.accuracy, html_file=args.html))}")
        return 0
    if args.accuracy:
        raise UsageError("--accuracy draws a figure: use it with --html FILE")
    from .report.tables import load_summary

    print(load_summary(args.run))
    return 0


def main_verify(argv: list[str]) -> int:
    from .accuracy import verify  # SymPy loads only for this subcommand

    return verify.main(argv)


def main_accuracy(argv: list[str]) -> int:
    from . import accuracy_cli

    return accuracy_cli.main(argv)


# name -> (summary for --help, main, what Ctrl-C prints); run is the default
COMMANDS = {
    "run": ("time the kernels (the default: 'mathbench [options]' = 'mathbench run [options]')",
            main_bench, "interrupted"),
    "verify": ("prove every formula with SymPy and check the kernels", main_verify, "interrupted"),
    "accuracy": ("accuracy run folder; --exhaustive: every float32 input", main_accuracy, RESUMABLE),
    "compare": ("runs side by side: per-row speedup over the first run with intervals; --html charts",
                main_compare, "interrupted"),
    "report": ("print the summary of an earlier run", main_report, "interrupted"),
    "export": ("write a run's timings as pyperf JSON (--pyperf FILE.json)", main_export, "interrupted"),
}


def main(argv: list[str] | None = None) -> int:
    return build_parser().run_subcommands(COMMANDS, "run", argv)
