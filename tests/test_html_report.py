"""The HTML reports (``report RUN --html FILE``): built from the committed run folders (nothing is
measured), parsed with the standard library; every embedded image decodes to a real picture, the
page loads nothing from the network, names the run's command and CPU, and every figure has a
legend on every panel with lines told apart by colour and marker. Bad output paths and run
folders are one line and exit 2."""
from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.colors
import matplotlib.image
import matplotlib.text
import pytest

from mathbench.core import runs
from mathbench.report import html, run_page

ROOT = Path(__file__).resolve().parents[1] / "results"
KERNEL_RUN = ROOT / "mathbench-20261121-140026"
ACCURACY_RUN = ROOT / "accuracy-exhaustive"
SWEEP, STUDY, VERSUS = ROOT / "lstm-sweep", ROOT / "lstm-accuracy-embedded", ROOT / "lstm-vs-torch"


class Page(HTMLParser):
    """Every tag with its attributes, and the page's visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _legend_styles(ax) -> list[tuple]:
    """(colour, marker) of each legend entry of an axis (errorbar entries: their data line)."""
    handles, _ = ax.get_legend_handles_labels()
    out = []
    for h in handles:
        line = h.lines[0] if hasattr(h, "lines") else h  # ErrorbarContainer -> its data line
        out.append((matplotlib.colors.to_hex(line.get_color()), line.get_marker()))
    return out


def check_figures(figs) -> None:
    assert figs
    for title, fig, _ in figs:
        for ax in fig.axes:
            if not ax.axison:  # an empty cell of a panel grid
                continue
            assert ax.get_legend() is not None, f"{title}: panel {ax.get_title()!r} has no legend"
            styles = _legend_styles(ax)
            assert len(styles) == len(ax.get_legend().get_texts()) > 0
            assert len(set(styles)) == len(styles), f"{title}: two lines share colour and marker in {ax.get_title()!r}"


def check_page(text: str, meta: dict) -> Page:
    p = Page(text)
    images = [a["src"] for t, a in p.tags if t == "img"]
    assert images
    for src in images:
        assert src.startswith("data:image/png;base64,")
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(io.BytesIO(raw), format="png")
        assert pixels.ndim == 3 and pixels.shape[2] in (3, 4) and min(pixels.shape[:2]) > 100
        assert pixels[..., :3].std() > 0.01  # not a blank canvas
    assert all(a.get("alt") for t, a in p.tags if t == "img")
    # nothing to fetch: no script, stylesheet or frame from anywhere, no image from a URL
    assert not [t for t, _ in p.tags if t in ("script", "link", "iframe", "object", "embed")]
    refs = [v for _, a in p.tags for k, v in a.items() if k in ("src", "href") and v]
    assert not [r for r in refs if not r.startswith("data:")]
    assert "http://" not in text.split("<body>")[0] and "https://" not in text.split("<body>")[0]
    visible = "".join(p.text)
    assert meta["command"] in visible and meta["cpu"]["model"] in visible
    return p


def test_kernel_page_with_exhaustive_accuracy(tmp_path):
    df, meta = runs.load_run(KERNEL_RUN)
    acc, _ = run_page.load_accuracy(ACCURACY_RUN)
    figs = run_page.figures(df, acc)
    check_figures(figs)
    # the speed-vs-accuracy points sit at the exhaustive run's errors, not the run's sampled ones
    sva = [f for t, f, _ in figs if t == "speed against accuracy, float32"][0]
    handles, _ = sva.axes[0].get_legend_handles_labels()
    xs = sorted(round(float(h.lines[0].get_xdata()[0]), 6) for h in handles)
    worst = acc[(acc["dtype"] == "float32") & (acc["form"] == "forward")]
    drawn = set(zip(df["function"], df["impl"]))
    expected = sorted(round(max(float(v), 0.1), 6) for f, i, v in zip(worst["function"], worst["impl"], worst["max_ulp"])
                      if (f, i) in drawn)
    assert xs == expected
    # labels beside the points do not overlap each other
    sva.canvas.draw()
    renderer = sva.canvas.get_renderer()
    boxes = [matplotlib.text.Text.get_window_extent(t, renderer) for t in sva.axes[0].texts]
    assert boxes and not [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
    text = run_page.build(KERNEL_RUN, ACCURACY_RUN, figs=figs, html_file=tmp_path / "r.html")
    p = check_page(text, meta)
    assert sum(t == "img" for t, _ in p.tags) == len(figs)
    visible = "".join(p.text)
    # the command that made the page, with its values (test_printed_report_command_is_accepted runs it)
    assert f"report: {run_page.report_command(KERNEL_RUN, tmp_path / 'r.html', ACCURACY_RUN)}" in visible
    assert f"--html {tmp_path / 'r.html'} --accuracy {ACCURACY_RUN}" in visible
    for finding in run_page.tables.kernel_findings(df):
        assert finding in visible
    assert "224 from cache" in visible  # the compile line from metadata timing


def _lstm_page(run: Path):
    from lstm_numba import report_html

    df, meta = runs.load_run(run)
    figs = report_html.figures(meta["kind"], df)
    check_figures(figs)
    text = report_html.build(run, df, meta, figs=figs)
    return check_page(text, meta), df, figs


def test_lstm_sweep_page():
    from lstm_numba import findings

    p, df, figs = _lstm_page(SWEEP)
    titles = [t for t, _, _ in figs]
    assert {"training speedup against hidden size", "the baseline against torch.nn.LSTM"} <= set(titles)
    assert any(t.startswith("quality against hidden size") for t in titles)
    visible = "".join(p.text)
    assert all(f in visible for f in findings.all_findings(df))


def test_lstm_study_and_versus_pages():
    from lstm_numba import study, versus

    p, df, figs = _lstm_page(STUDY)
    assert "test loss: candidate - baseline" in [t for t, _, _ in figs]
    assert study.summary(df).splitlines()[0] in "".join(p.text)
    p, df, figs = _lstm_page(VERSUS)
    assert len(figs) == 2
    # one line per batch size in every panel, each median drawn where the summary says
    summ = versus.summarize(df)
    ax = figs[0][1].axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines() if ln.get_label().startswith("batch")}
    assert len(lines) == summ["batch"].nunique()
    g = summ[(summ["layers"] == summ["layers"].min()) & (summ["threads"] == summ["threads"].min())
             & (summ["batch"] == summ["batch"].min())].sort_values("hidden")
    assert list(lines[f"batch {g['batch'].iloc[0]}"].get_ydata()) == pytest.approx(list(g["train_ratio"]))
    assert versus.crossover(summ)[0] in "".join(p.text)


def test_page_escapes_text():
    text = html.page("a <b> & c", [("x", html.table_html([["<script>x</script>"]], ["h&"]))])
    p = Page(text)
    assert [t for t, _ in p.tags].count("script") == 0 and "<script>x</script>" in "".join(p.text)


def test_write_page_refuses_existing_and_writes_whole(tmp_path):
    out = tmp_path / "r.html"
    html.write_page(out, "first")
    with pytest.raises(html.UsageError, match="exists"):
        html.write_page(out, "second")
    assert out.read_text() == "first" and [f.name for f in tmp_path.iterdir()] == ["r.html"]  # no temporary left
    with pytest.raises(html.UsageError, match="does not exist"):
        html.write_page(tmp_path / "missing" / "r.html", "x")


def _one_line_exit_2(main, argv, capsys, what):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and what in err and "Traceback" not in err


@pytest.mark.parametrize("cli", ["mathbench", "lstm_numba"])
def test_cli_refuses_bad_paths(cli, tmp_path, capsys):
    main = __import__(f"{cli}.cli", fromlist=["main"]).main
    run = KERNEL_RUN if cli == "mathbench" else VERSUS
    existing = tmp_path / "old.html"
    existing.write_text("earlier")
    _one_line_exit_2(main, ["report", str(run), "--html", str(existing)], capsys, "exists")
    assert existing.read_text() == "earlier"
    _one_line_exit_2(main, ["report", str(run), "--html", str(tmp_path / "no" / "r.html")], capsys, "does not exist")
    bad = tmp_path / "notarun"
    bad.mkdir()
    _one_line_exit_2(main, ["report", str(bad), "--html", str(tmp_path / "r.html")], capsys, "notarun")
    assert not (tmp_path / "r.html").exists()
    other = SWEEP if cli == "mathbench" else KERNEL_RUN  # a run of the other program
    _one_line_exit_2(main, ["report", str(other), "--html", str(tmp_path / "r.html")], capsys, str(other))
    assert not (tmp_path / "r.html").exists()


def test_mathbench_cli_refuses_a_non_accuracy_run(tmp_path, capsys):
    from mathbench.cli import main

    _one_line_exit_2(main, ["report", str(KERNEL_RUN), "--html", str(tmp_path / "r.html"), "--accuracy",
                            str(SWEEP)], capsys, "not a mathbench accuracy run")
    assert not (tmp_path / "r.html").exists()


def test_unknown_commit_says_unknown():
    rows = dict(html.machine_rows({"git": {"commit": None, "dirty": None}}))
    assert rows["git commit"] == "unknown (unknown state)" and "None" not in rows["git commit"]
    assert dict(html.machine_rows({"git": {"commit": "abc123", "dirty": False}}))["git commit"] == "abc123 (clean)"
    assert dict(html.machine_rows({"git": {"commit": "abc123", "dirty": True}}))["git commit"] == "abc123 (dirty)"


@pytest.mark.parametrize("accuracy", [None, ACCURACY_RUN])
def test_printed_report_command_is_accepted(tmp_path, capsys, monkeypatch, accuracy):
    """The page's 'report:' line, run through the command line, makes the same page again."""
    import shlex

    from mathbench.cli import main

    target = tmp_path / "my page.html"  # a space: the command must be quoted
    line = run_page.report_command(KERNEL_RUN, target, accuracy)
    args = shlex.split(line)
    assert args[:3] == ["python", "-m", "mathbench"]
    calls = []
    monkeypatch.setattr(run_page, "build", lambda *a, **k: calls.append((a, k)) or "<p>page</p>")
    assert main(args[3:]) == 0, capsys.readouterr().err
    assert target.read_text() == "<p>page</p>"
    (run_dir, acc), kw = calls[0]
    assert Path(run_dir) == KERNEL_RUN and (acc is None if accuracy is None else Path(acc) == accuracy)
    assert Path(kw["html_file"]) == target
