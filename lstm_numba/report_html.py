"""``lstm_numba report RUN --html FILE``: one self-contained page for an LSTM run folder (a sweep,
an accuracy study or a vs-torch run): machine and settings, the summary tables as the command
prints them, the key figures, the findings and the exact command. Read from the folder's files
only; nothing is measured.

``figures(kind, df)`` returns the figure objects before they are encoded, so tests can check
them (a legend on every panel, distinct colour and marker per line).
"""
from __future__ import annotations

import math
from pathlib import Path

from mathbench import htmlpage as H
from mathbench import plots

from . import findings, study, sweep, versus


def _sweep_figures(df) -> list[tuple]:
    out = [("training speedup against hidden size", plots.lstm_vs_hidden(df, "speedup_train", "training speedup"),
            "time(baseline) / time(variant) per training step, paired; > 1 = the variant is faster; one line per "
            "layer count, one panel per task, variant, dtype and thread count"),
           ("prediction speedup against hidden size",
            plots.lstm_vs_hidden(df, "speedup_latency", "prediction speedup (batch 1)"),
            "time(baseline) / time(variant) of one batch-1 prediction, paired")]
    # a shape at another thread count trains on the same seeds and batches: its quality once
    one = df[(df["backend"] == "numba") & ~df["baseline"].astype(str).eq("True") & (df["threads"] == df["threads"].min())]
    for column, what in (("loss_diff", "held-out loss, variant - baseline"),
                         ("accuracy_diff", "held-out accuracy, variant - baseline")):
        if column in df and df[column].notna().any():
            out.append((f"quality against hidden size: {what}",
                        plots.lstm_vs_hidden(df, column, what, ref=0.0, rows=one),
                        "paired by seed, between trained models only (rows where the variant or its baseline "
                        "did not beat the trivial baseline are left out); 0 = no difference; drawn at one thread "
                        "count (other counts train the same seeds)"))
    if "vs_torch_train" in df and df["vs_torch_train"].notna().any():
        out.append(("the baseline against torch.nn.LSTM", plots.lstm_torch_peer(df),
                    "time(torch) / time(Numba) per training step, paired; > 1 = Numba faster"))
    if (df["threads"] > 1).any() and (df["threads"] == 1).any():
        out.append(("serial against parallel (baseline)", plots.lstm_serial_parallel(df),
                    "ms per training step; separate configurations, so read the two lines, not a ratio"))
    return out


def _study_figures(df) -> list[tuple]:
    comp = study.comparisons(df)
    out = []
    for metric in ("loss", "accuracy"):
        if len(comp) and (comp["metric"] == metric).any() and comp.loc[comp["metric"] == metric, "diff"].notna().any():
            out.append((f"test {metric}: candidate - baseline", plots.lstm_study(comp, metric),
                        "median of the paired differences over the seeds where both trained, one line per "
                        "candidate; bars: the interval named in each title; 0 = no difference"))
    return out


def _versus_figures(df) -> list[tuple]:
    summ = versus.summarize(df)
    return [(f"time(torch) / time(Numba): {what}", plots.lstm_versus(summ, key),
             "median over the run's processes, one line per batch size; > 1 = Numba faster; bands: the processes' "
             "range (min..max)") for key, what in (("train", "training step"), ("infer", "inference"))]


def _study_findings(df) -> list[str]:
    """Comparisons whose 95% interval excludes 0 (ranges of too few seeds are not judged)."""
    comp = study.comparisons(df)
    if comp.empty:
        return []
    ci = comp[comp["interval"] != sweep.RANGE]
    clear = ci[(ci["diff_lo"] > 0) | (ci["diff_hi"] < 0)]
    out = [f"{len(clear)} of {len(ci)} paired comparisons with a 95% interval have it entirely above or below 0"
           + (f" ({len(comp) - len(ci)} more from too few seeds give a range, not judged)" if len(ci) < len(comp)
              else "") + "."]
    for r in clear.itertuples():
        worse = (r.diff > 0) == (r.better == "lower")
        p = "-" if not math.isfinite(r.p_holm) else f"{r.p_holm:.3g}"
        out.append(f"{r.task}, {r.layers} layer(s), hidden {r.hidden}, {r.dtype}: {r.variant} {r.metric} "
                   f"{r.diff:+.4f} [{r.diff_lo:+.4f}, {r.diff_hi:+.4f}] against the baseline "
                   f"({'worse' if worse else 'better'}; Holm-adjusted Wilcoxon p {p}; n = {r.n}).")
    return out


# kind -> (title, summary lines, findings, figures); the CLI checks the kind and its key column first
PAGES = {
    sweep.KIND: ("LSTM sweep", lambda df, meta, run: [sweep.summary(df), *sweep.status(df, meta)],
                 lambda df: findings.all_findings(df), _sweep_figures),
    study.KIND: ("LSTM accuracy study", lambda df, meta, run: [study.summary(df), *study.status(df, meta)],
                 _study_findings, _study_figures),
    versus.KIND: ("Numba LSTM against torch.nn.LSTM", lambda df, meta, run: [versus.report(Path(run), df, meta)],
                  lambda df: (lambda summ: versus.crossover(summ) + versus.efficiency_line(summ))(versus.summarize(df)),
                  _versus_figures),
}


def figures(kind: str, df) -> list[tuple]:
    """(title, figure, caption) of the page of a run of ``kind``."""
    return PAGES[kind][3](df)


def build(run_dir, df, meta, figs=None) -> str:
    """The page's HTML for an LSTM run folder whose rows and metadata the caller loaded and whose
    kind it checked (``figs``: the figures, if the caller already drew them with ``figures``)."""
    run_dir = Path(run_dir)
    title, summary, judged, draw = PAGES[meta.get("kind")]
    sessions = meta.get("sessions") or []
    wall = sum(float(s.get("wall_seconds") or 0) for s in sessions if isinstance(s, dict))
    extra = [["sessions", f"{len(sessions)} (wall time {wall:.0f} s in all)" if sessions else "-"],
             ["variants", meta.get("variants") or "-"]]
    lines = judged(df)
    body = []
    for name, fig, caption in draw(df) if figs is None else figs:
        body += [H.heading(name), H.figure_html(fig, name, caption)]
    sections = [("Machine and run", H.machine_html(meta, run_dir, extra)),
                ("Settings", H.settings_html(meta.get("settings") or {})),
                ("Findings", H.bullets(lines, "findings") if lines else H.paragraph("none")),
                ("Figures", body or [H.paragraph("no figures: no rows to draw")]),
                ("Summary tables", H.pre("\n".join(summary(df, meta, run_dir)))),
                ("Command", [H.pre(meta.get("command", "-")),
                             H.paragraph(f"report: python -m lstm_numba report {run_dir}")])]
    return H.page(f"{title}: {run_dir.name}", sections)
