"""``python -m lstm_numba accuracy`` (issue 9, item 5): the paired statistics against independent
computations, the comparison's bookkeeping (direction, baseline, which seeds count), and the
command end to end: rows, pairing, resume, worker processes and bad input."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from lstm_numba import baselines as BL, cli, study, sweep
from mathbench.core import runs

TINY = ["--tasks", "lm,classify", "--hidden", "4", "--seeds", "2", "--iterations", "6", "--seq-len", "8",
        "--batch", "4", "--val-every", "2", "--patience", "1", "--pairs", "isru", "--no-progress"]


def run(argv, capsys):
    code = cli.main(["accuracy", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------------
# statistics against independent computations


def _exact_wilcoxon(d: np.ndarray) -> float:
    """Two-sided exact signed-rank p by enumerating every sign assignment (no ties in |d|)."""
    ranks = np.argsort(np.argsort(np.abs(d))) + 1
    w = ranks[d > 0].sum()
    all_w = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=d.size)]
    all_w = np.array(all_w)
    mean = ranks.sum() / 2
    return float(np.mean(np.abs(all_w - mean) >= abs(w - mean) - 1e-9))


@pytest.mark.parametrize("d", [
    np.array([0.3, 0.1, -0.05, 0.2, 0.4, 0.15, 0.25, -0.02, 0.33, 0.12]),
    np.array([-1.0, -2.5, 0.5, -3.0, -0.7, -1.9]),
    np.arange(1, 11) * 0.01,
])
def test_paired_tests_match_exact_enumeration(d):
    p_w, p_s, nz = study.paired_tests(d)
    assert nz == d.size
    assert p_w == pytest.approx(_exact_wilcoxon(d), rel=1e-9)
    k, n = int((d > 0).sum()), d.size
    tail = min(k, n - k)
    assert p_s == pytest.approx(min(1.0, 2 * binom.cdf(tail, n, 0.5)), rel=1e-9)


def test_paired_tests_drop_zeros_and_all_zero_is_no_evidence():
    assert study.paired_tests(np.zeros(10)) == (1.0, 1.0, 0)
    p_w, p_s, nz = study.paired_tests(np.array([0.0, 0.0, 1.0, 2.0, 3.0]))
    assert nz == 3 and p_s == pytest.approx(0.25)


def test_median_interval_is_the_order_statistic_interval_or_the_range():
    d = np.array([5.0, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    mid, lo, hi, kind = study.median_interval(d)
    # n = 10: [x(2), x(9)] covers the median with probability 1 - 2 * P(Bin(10, 1/2) <= 1) = 97.9%
    assert (mid, lo, hi, kind) == (5.5, 2.0, 9.0, "95% order-statistic")
    assert 1 - 2 * binom.cdf(1, 10, 0.5) >= 0.95 > 1 - 2 * binom.cdf(2, 10, 0.5)
    mid, lo, hi, kind = study.median_interval(np.array([3.0, 1.0, 2.0]))
    assert (mid, lo, hi, kind) == (2.0, 1.0, 3.0, sweep.RANGE)  # n = 3: [min, max] covers 75%, not 95%
    assert study.median_interval(np.array([]))[3] == ""


def test_median_interval_coverage_by_simulation():
    rng = np.random.default_rng(5)
    for n in (6, 10, 12):
        hits = 0
        for _ in range(4000):
            d = rng.standard_t(3, size=n) + 0.7  # heavy tails, true median 0.7
            _, lo, hi, _ = study.median_interval(d)
            hits += lo <= 0.7 <= hi
        assert hits / 4000 >= 0.94, n


def test_holm_adjustment():
    p = np.array([0.01, 0.04, 0.03, 0.005, math.nan])
    out = study.holm(p)
    np.testing.assert_allclose(out[:4], [0.03, 0.06, 0.06, 0.02])
    assert math.isnan(out[4])
    np.testing.assert_allclose(study.holm(np.array([0.6, 0.7])), [1.0, 1.0])  # capped at 1


# --------------------------------------------------------------------------------------------
# the comparison's bookkeeping


def _rows(task="lm", n=10, shift=0.1, flags=None, diverged=()):
    """Baseline loss 1 + seed/100; candidate = baseline + shift (worse when shift > 0)."""
    out = []
    for seed in range(n):
        base = 1.0 + seed / 100
        for variant, role, loss in (("tanh:numba_simd/sigmoid:numba_simd", "baseline", base),
                                    ("isru/sigmoid:numba_simd", "candidate", base + shift)):
            flag = (flags or {}).get((seed, role), BL.TRAINED)
            acc = None if task == "lm" else 0.9 - (loss - base)
            out.append(dict(task=task, layers=1, hidden=8, dtype="float32", variant=variant, role=role, seed=seed,
                            loss=loss, accuracy=acc, f1=None if task == "lm" else acc,
                            diverged=(seed, role) in diverged, quality_flag=flag))
    return pd.DataFrame(out)


def test_comparison_is_candidate_minus_baseline():
    c = study.comparisons(_rows(shift=0.1)).set_index("metric")
    r = c.loc["loss"]
    assert r["diff"] == pytest.approx(0.1) and r["diff_lo"] == pytest.approx(0.1)
    assert r["baseline_median"] == pytest.approx(1.045) and r["variant_median"] == pytest.approx(1.145)
    assert r["worse_seeds"] == 10 and r["n"] == 10 and r["interval"] == "95% order-statistic"
    assert r["p_wilcoxon"] < 0.01
    better = study.comparisons(_rows(shift=-0.1)).set_index("metric").loc["loss"]
    assert better["diff"] == pytest.approx(-0.1) and better["worse_seeds"] == 0


def test_accuracy_worse_means_lower():
    c = study.comparisons(_rows(task="classify", shift=0.05)).set_index("metric")
    assert c.loc["accuracy", "diff"] == pytest.approx(-0.05)
    assert c.loc["accuracy", "better"] == "higher" and c.loc["accuracy", "worse_seeds"] == 10
    assert c.loc["loss", "worse_seeds"] == 10


def test_untrained_and_diverged_seeds_leave_the_comparison():
    df = _rows(n=10, flags={(0, "candidate"): BL.NOT_TRAINED, (1, "baseline"): BL.NOT_TRAINED},
               diverged={(2, "candidate")})
    df.loc[(df.seed == 2) & (df.role == "candidate"), "loss"] = math.nan
    r = study.comparisons(df).set_index("metric").loc["loss"]
    assert r["seeds"] == 10 and r["n"] == 7 and r["excluded"] == 3
    assert r["interval"] == "95% order-statistic"
    few = study.comparisons(_rows(n=4)).set_index("metric").loc["loss"]
    assert few["interval"] == sweep.RANGE  # 4 seeds: no 95% interval


def test_weak_models_stay_in_the_comparison():
    df = _rows(flags={(s, r): BL.WEAK for s in range(10) for r in ("baseline", "candidate")})
    r = study.comparisons(df).set_index("metric").loc["loss"]
    assert r["n"] == 10 and "10 weak" in r["variant_flags"]


# --------------------------------------------------------------------------------------------
# the command


def test_study_end_to_end_rows_pairing_and_summary(tmp_path, capsys):
    out = tmp_path / "st"
    code, text, err = run([*TINY, "--out", out], capsys)
    assert code == 0, err
    df = pd.read_csv(out / runs.RESULTS)
    # 2 tasks x 1 shape x 2 seeds x 2 variants
    assert len(df) == 8 and set(df["unit_rows"]) == {2}
    assert set(df["variant"]) == {"tanh:numba_simd/sigmoid:numba_simd", "isru/sigmoid:numba_simd"}
    assert (df.groupby(["unit_id"]).size() == 2).all()
    assert set(df["seed"]) == {0, 1} and set(df.loc[df.role == "baseline", "variant"]) == {
        "tanh:numba_simd/sigmoid:numba_simd"}
    # each variant was trained to a validation-chosen checkpoint within the budget
    assert (df["best_step"] <= df["steps"]).all() and (df["steps"] <= 6).all()
    assert ((df["best_step"] % 2 == 0) | (df["best_step"] == df["steps"])).all()  # a validation step
    lm = df[df.task == "lm"]
    assert lm["ref_unigram"].notna().all() and lm["ref_bigram"].notna().all()
    cl = df[df.task == "classify"]
    assert cl["ref_majority_acc"].notna().all() and cl["accuracy"].between(0, 1).all()
    # same seed, same shape -> same parameter count for every variant (same initial weights)
    assert (df.groupby("unit_id")["parameters"].nunique() == 1).all()
    summary = pd.read_csv(out / study.SUMMARY)
    assert set(summary["metric"]) == {"loss", "accuracy", "f1"}
    assert "candidate - baseline, paired by seed" in text and "trivial baselines" in text
    meta = json.loads((out / runs.METADATA).read_text())
    assert meta["kind"] == study.KIND and meta["finished"] and len(meta["plan"]) == 4
    # report reprints it
    code, text2, err = cli.main(["report", str(out)]), *capsys.readouterr()
    assert code == 0 and "candidate - baseline" in text2


def test_same_seed_same_training(tmp_path, capsys):
    """Deterministic: a seed's rows do not depend on the run (or on the process that made them)."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert run([*TINY, "--tasks", "classify", "--out", a], capsys)[0] == 0
    assert run([*TINY, "--tasks", "classify", "--out", b, "--jobs", "2"], capsys)[0] == 0
    cols = ["unit_id", "variant", "steps", "best_step", "val_loss", "loss", "accuracy", "f1"]
    ra = pd.read_csv(a / runs.RESULTS)[cols].sort_values(["unit_id", "variant"]).reset_index(drop=True)
    rb = pd.read_csv(b / runs.RESULTS)[cols].sort_values(["unit_id", "variant"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ra, rb)
    assert pd.read_csv(b / runs.RESULTS)["worker_pid"].nunique() >= 1


def test_resume_redoes_a_cut_unit_once(tmp_path, capsys):
    out = tmp_path / "st"
    assert run([*TINY, "--tasks", "lm", "--out", out], capsys)[0] == 0
    path = out / runs.RESULTS
    lines = path.read_text().splitlines(keepends=True)
    full = pd.read_csv(path)
    path.write_text("".join(lines[:-1]) + lines[-1][:10])  # the last unit cut: one whole row, one torn
    code, text, err = run([*TINY, "--tasks", "lm", "--out", out], capsys)
    assert code == 0, err
    again = pd.read_csv(path)
    assert len(again) == len(full) and not again.duplicated(["unit_id", "variant"]).any()
    assert "1 already finished in this folder" in text
    meta = json.loads((out / runs.METADATA).read_text())
    assert [s["units_measured"] for s in meta["sessions"]] == [2, 1]


def test_status_names_trainings_that_hit_the_step_limit():
    df = _rows(n=3)
    df["stopped_early"] = [True, True, False, True, True, True]
    assert "10 trained" not in study._flags(df)
    assert study._flags(df) == "6 trained; 1 at the step limit"
    (note,) = study.status(df, {})
    assert note.startswith("note: 1 of 6 trainings ran to the step limit")
    df["stopped_early"] = True
    assert study.status(df, {}) == [] and study._flags(df) == "6 trained"


def test_report_says_incomplete(tmp_path, capsys):
    out = tmp_path / "st"
    assert run([*TINY, "--tasks", "lm", "--out", out], capsys)[0] == 0
    path = out / runs.RESULTS
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the last unit lost one of its two rows
    code = cli.main(["report", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "incomplete: 1 of 2 units" in text


def test_ctrl_c_keeps_finished_seeds_and_names_the_folder(tmp_path, capsys, monkeypatch):
    real, calls = study.run_unit, []

    def interrupted(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second seed trains
        return real(*a, **kw)

    monkeypatch.setattr(study, "run_unit", interrupted)
    out = tmp_path / "st"
    code, _, err = run([*TINY, "--tasks", "lm", "--out", out], capsys)
    assert code == 130 and err.strip().splitlines() == [err.strip()]
    assert f"run again with --out {out} to resume" in err
    assert len(pd.read_csv(out / runs.RESULTS)) == 2  # the first seed's pair, whole


def test_resume_refuses_other_code(tmp_path, capsys, monkeypatch):
    out = tmp_path / "st"
    assert run([*TINY, "--tasks", "lm", "--out", out], capsys)[0] == 0
    monkeypatch.setattr(study, "code_version", lambda s: "0000other")
    code, _, err = run([*TINY, "--tasks", "lm", "--out", out], capsys)
    assert code == 2 and "measured by other code" in err


@pytest.mark.parametrize("argv, fragment", [
    (["--seeds", "0"], "--seeds 0: must be positive"),
    (["--jobs", "0"], "--jobs 0: must be positive"),
    (["--jobs", "999"], "--jobs 999: more than"),
    (["--pairs", "nosuch/sigmoid"], "unknown function 'nosuch'"),
    (["--tasks", "lm", "--occupancy-train", "a.txt", "--occupancy-test", "b.txt"], "add it to --tasks"),
    (["--occupancy-train", "a.txt"], "go together"),
    (["--tasks", "vision"], "vision"),
    (["--patience", "-1"], "--patience -1"),
    (["--lr", "nan"], "--lr"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, argv, fragment):
    out = tmp_path / "st"
    code, text, err = run([*TINY, *argv, "--out", out], capsys)
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and fragment in err
    assert not out.exists()


def test_occupancy_files_run_classify_only(tmp_path, capsys):
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "occupancy"
    if not (shared / "datatraining.txt").exists():
        pytest.skip("UCI occupancy files not present")
    out = tmp_path / "st"
    code, text, err = run([*TINY[2:], "--seeds", "1", "--occupancy-train", shared / "datatraining.txt",
                           "--occupancy-test", shared / "datatest.txt", "--out", out], capsys)
    assert code == 0, err
    df = pd.read_csv(out / runs.RESULTS)
    assert set(df["task"]) == {"classify"} and df["data"].str.contains("datatraining.txt").all()


def test_accuracy_help_explains(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["accuracy", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    for fragment in ("validation optimum", "Wilcoxon", "--seeds", "(default 10", "--jobs", "resumes"):
        assert fragment in text


def test_study_plot_one_labelled_errorbar_per_candidate_and_panel():
    import matplotlib

    matplotlib.use("Agg")
    from mathbench.report import plots

    comp = pd.concat([study.comparisons(_rows(task=t, shift=s).assign(hidden=h))
                      for t in ("lm", "classify") for h, s in ((8, 0.1), (16, -0.1))], ignore_index=True)
    fig = plots.lstm_study(comp, "loss")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.has_data()]
    assert len(axes) == 2  # lm and classify
    for ax in axes:
        assert len(ax.containers) == 1  # one candidate
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["isru/sigmoid:numba_simd"]
        assert "order-statistic 95%" in ax.get_title() and "10 paired seeds" in ax.get_title()
    few = study.comparisons(_rows(n=4))
    ax = plots.lstm_study(few, "loss").axes[0]
    assert "range (too few seeds for 95%)" in ax.get_title()


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    """A driver killed outright (SIGKILL) must not leave worker processes training on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "st"
    argv = [sys.executable, "-m", "lstm_numba", "accuracy", *TINY, "--tasks", "lm", "--seeds", "40",
            "--iterations", "400", "--jobs", "2", "--out", str(out)]
    p = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        children: list = []
        while time.time() < deadline and len(children) < 2:  # the two workers have started
            time.sleep(0.2)
            children = [int(c) for c in Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()]
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert len(children) >= 2
    deadline = time.time() + 20
    alive = children
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [c for c in alive if Path(f"/proc/{c}").exists()
                 and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]]
    for c in alive:
        os.kill(c, signal.SIGKILL)
    assert not alive, "workers outlived their driver"


@pytest.mark.parametrize("kind, fragment", [(study.KIND, "no unit_id column; not an LSTM accuracy study"),
                                            (sweep.KIND, "no config_id column; not an LSTM sweep")])
def test_report_on_a_results_file_of_the_wrong_shape(tmp_path, capsys, kind, fragment):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / runs.METADATA).write_text(json.dumps({"kind": kind}))
    (run_dir / runs.RESULTS).write_text("a,b\n1,2\n")
    assert cli.main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()] and fragment in err
