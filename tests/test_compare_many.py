"""``mathbench compare RUN_1 ... RUN_N`` on synthetic run folders (written with the runs module's
own writers, times chosen so every ratio is known exactly): the ratios' direction (time of run 1
over time of run K), their conservative intervals and flags, the rows only some runs have, the
long CSV, and the HTML page (parsed, every figure a decodable PNG, a legend with every run's
CPU / threads / Numba / commit label on every panel)."""
import base64
import io
import struct
from html.parser import HTMLParser

import matplotlib.image
import pandas as pd
import pytest

from mathbench import bench, cli
from mathbench.core import runs
from mathbench.report import compare

SIZES = (1_000, 10_000)


def _row(function, impl, size, ns, threads=1, numpy_speedup=None, **extra) -> dict:
    """A results row whose interval is ns +- 1% (rows of two runs whose times differ 2x do not overlap)."""
    r = dict(function=function, form="forward", impl=impl, backend="numpy" if impl == "numpy" else "numba",
             dtype="float32", size=size, threads=threads, parallel=threads > 1, ns_per_element=ns,
             ns_lo=ns * 0.99, ns_hi=ns * 1.01, seconds_per_call=ns * size * 1e-9, rounds=9, repeats=50,
             processes=3, rounds_per_process=3, interval_method="t95-processes")
    if numpy_speedup is not None:
        r.update(speedup_vs_numpy=numpy_speedup, speedup_vs_numpy_lo=numpy_speedup * 0.9,
                 speedup_vs_numpy_hi=numpy_speedup * 1.1)
    return {**r, **extra}


def base_rows(scale: float = 1.0) -> list[dict]:
    """tanh and isru (Numba and NumPy) at two sizes; every time multiplied by ``scale``."""
    rows = []
    for function, ns in (("tanh", 2.0), ("isru", 0.5)):
        for size in SIZES:
            rows.append(_row(function, "numba", size, ns * scale, numpy_speedup=4.0 / scale))
            rows.append(_row(function, "numpy", size, 4 * ns * scale))
    return rows


def make_run(path, rows, cpu="Test CPU 9000", numba="0.99.1", commit="abc1234def5678", dirty=False,
             created="2026-01-02T03:04:05+00:00"):
    path.mkdir(parents=True)
    runs.write_json(path / runs.METADATA, {
        "kind": "mathbench", "created": created, "command": "python -m mathbench --quick", "finished": True,
        "git": {"commit": commit, "dirty": dirty}, "cpu": {"model": cpu, "flags": []}, "cores": 8,
        "platform": "Linux-test", "versions": {"python": "3.11.7", "numba": numba, "numpy": "2.0.0"}})
    with runs.ResultsWriter(path, bench.COLUMNS) as w:
        for r in rows:
            w.write(r)
    return path


@pytest.fixture
def three_runs(tmp_path):
    """Run 2 is twice as fast as run 1 everywhere; run 3 is twice as slow, lacks isru at 1e4 and
    has an exp row no other run has."""
    r1 = make_run(tmp_path / "r1", base_rows(), cpu="Alpha CPU", numba="0.61.0", commit="1111111aaaa")
    r2 = make_run(tmp_path / "r2", base_rows(0.5), cpu="Beta CPU", numba="0.62.0", commit="2222222bbbb",
                  dirty=True)
    rows3 = [r for r in base_rows(2.0) if not (r["function"] == "isru" and r["size"] == 10_000)]
    rows3.append(_row("exp", "numba", 1_000, 1.0, threads=4, numpy_speedup=1.5))
    r3 = make_run(tmp_path / "r3", rows3, cpu="Gamma CPU", numba="0.63.0", commit="3333333cccc")
    return r1, r2, r3


def run(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_ratios_are_time_of_run_1_over_time_of_run_k(three_runs, tmp_path, capsys):
    csv = tmp_path / "long.csv"
    code, out, err = run(["compare", *three_runs, "--csv", csv], capsys)
    assert code == 0, err
    long = pd.read_csv(csv)
    later = long[long["run"] > 1].dropna(subset=["speedup"])
    # run 2 is 2x faster (ratio 2), run 3 2x slower (ratio 0.5): a swapped direction gives 0.5 and 2
    assert (later.loc[later["run"] == 2, "speedup"].round(12) == 2.0).all()
    assert (later.loc[later["run"] == 3, "speedup"].round(12) == 0.5).all()
    assert len(later[later["run"] == 2]) == 8 and len(later[later["run"] == 3]) == 6
    # conservative interval: [lo_1 / hi_K, hi_1 / lo_K] around the ratio, and the flag set
    r2 = later[later["run"] == 2]
    assert ((r2["speedup_lo"] - 2 * 0.99 / 1.01).abs() < 1e-12).all()
    assert ((r2["speedup_hi"] - 2 * 1.01 / 0.99).abs() < 1e-12).all()
    assert later["differs"].astype(bool).all()
    # every run's rows are in the long table; run 1 is not compared with itself
    assert long.groupby("run").size().to_dict() == {1: 8, 2: 8, 3: 7}
    assert long.loc[long["run"] == 1, "speedup"].isna().all()
    exp = long[long["function"] == "exp"]
    assert len(exp) == 1 and pd.isna(exp["speedup"].iloc[0])  # no run-1 row to compare with
    # the printed table: one ratio column per later run, the direction stated, the flag shown
    assert "time of run 1 / time of run K (>1: run K faster)" in out
    line = next(l for l in out.splitlines() if l.startswith("tanh ") and "1,000" in l and " numba " in l)
    assert "2.00x [1.96, 2.04] *" in line and "0.50x [0.49, 0.51] *" in line
    assert line.index("2.00x") < line.index("0.50x")  # run 2's column before run 3's


def test_header_names_every_run(three_runs, capsys):
    code, out, _ = run(["compare", *three_runs], capsys)
    assert code == 0
    for k, (cpu, numba, commit) in enumerate([("Alpha CPU", "0.61.0", "1111111"), ("Beta CPU", "0.62.0", "2222222 (dirty)"),
                                              ("Gamma CPU", "0.63.0", "3333333")], start=1):
        line = next(l for l in out.splitlines() if l.startswith(f"run {k} = "))
        assert str(three_runs[k - 1]) in line and cpu in line and f"numba {numba}" in line
        assert f"commit {commit})" in line and "2026-01-02T03:04:05" in line
        assert "Student-t 95% across 3 processes" in line
    assert "4 threads" in out.splitlines()[2] and "1 threads" in out.splitlines()[0]


def _missing_section(out: str) -> list[list[str]]:
    section = out.split("rows not in every run", 1)[1].splitlines()[3:]
    return [line.split("  ") for line in section if line.strip()]


def _cells(section) -> set[str]:
    return {" ".join(c.strip() for c in r if c.strip()) for r in section}


def test_rows_in_only_some_runs_are_counted_and_listed(three_runs, tmp_path, capsys):
    listed = tmp_path / "missing.csv"
    code, out, _ = run(["compare", *three_runs, "--missing-csv", listed], capsys)
    assert code == 0 and "rows not in every run (3; not compared above" in out
    # counted per implementation, dtype and threads, with the functions and the runs that have them
    assert _cells(_missing_section(out)) == {"numba float32 1 1 isru 1, 2 3", "numpy float32 1 1 isru 1, 2 3",
                                             "numba float32 4 1 exp 3 1, 2"}
    # every row in the CSV (a dropped row is missed there and in the counts)
    rows = pd.read_csv(listed, dtype=str)
    assert sorted(map(tuple, rows[["function", "impl", "size", "threads", "in_runs", "missing_from"]].values)) == [
        ("exp", "numba", "1000", "4", "3", "1 2"), ("isru", "numba", "10000", "1", "1 2", "3"),
        ("isru", "numpy", "10000", "1", "1 2", "3")]
    # the main table holds only the rows every run has
    table = out.split("rows not in every run")[0]
    assert "exp" not in table and "10,000" in table and not any(
        l.startswith("isru") and "10,000" in l for l in table.splitlines())
    # two runs: the runs called A and B; every row in common: no section
    code, out, _ = run(["compare", three_runs[0], three_runs[2]], capsys)
    assert code == 0 and "rows not in every run (3;" in out
    assert _cells(_missing_section(out)) == {"numba float32 1 1 isru A B", "numpy float32 1 1 isru A B",
                                             "numba float32 4 1 exp B A"}
    code, out, _ = run(["compare", three_runs[0], three_runs[1]], capsys)
    assert code == 0 and "rows not in every run" not in out


def test_missing_rows_of_a_group_are_counted_not_listed(tmp_path, capsys):
    """A run without isru at all: 2 rows per implementation, one line each, not one per row."""
    a = make_run(tmp_path / "a", base_rows())
    b = make_run(tmp_path / "b", [r for r in base_rows() if r["function"] != "isru"])
    code, out, _ = run(["compare", a, b], capsys)
    assert code == 0 and "rows not in every run (4;" in out
    assert _cells(_missing_section(out)) == {"numba float32 1 2 isru A B", "numpy float32 1 2 isru A B"}


def test_two_runs_table_and_csv(three_runs, tmp_path, capsys):
    csv = tmp_path / "two.csv"
    code, out, err = run(["compare", three_runs[0], three_runs[1], "--csv", csv], capsys)
    assert code == 0, err
    two = pd.read_csv(csv)
    assert len(two) == 8 and (two["speedup"].round(12) == 2.0).all() and two["differs"].all()
    assert ((two["ns_per_element_a"] / two["ns_per_element_b"]).round(12) == 2.0).all()
    line = next(l for l in out.splitlines() if l.startswith("tanh ") and "1,000" in l and " numba " in l)
    assert "2.00x [1.96, 2.04]" in line and line.rstrip().endswith("*")
    # a run against itself: ratio 1 and no flag (the intervals overlap)
    code, out, _ = run(["compare", three_runs[0], three_runs[0]], capsys)
    line = next(l for l in out.splitlines() if l.startswith("tanh ") and "1,000" in l and " numba " in l)
    assert "1.00x [0.98, 1.02]" in line and not line.rstrip().endswith("*")


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))


def _png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the PNG header (IHDR), read independently of matplotlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def test_html_page_is_self_contained_with_a_png_per_function(three_runs, tmp_path, capsys):
    page = tmp_path / "cmp.html"
    code, out, err = run(["compare", *three_runs, "--html", page], capsys)
    assert code == 0, err
    text = page.read_text()
    parser = _Images()
    parser.feed(text)
    parser.close()
    assert "script" not in parser.tags and "link" not in parser.tags and "http" not in text
    assert [i["alt"] for i in parser.images] == [f"speedup of {f} across runs" for f in ("tanh", "isru", "exp")]
    for img in parser.images:
        prefix, _, data = img["src"].partition(",")
        assert prefix == "data:image/png;base64"
        png = base64.b64decode(data, validate=True)
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.shape[:2] == _png_size(png) and pixels.shape[2] in (3, 4) and min(pixels.shape[:2]) > 200
    # each run's label (CPU, threads, Numba, commit) is in the page, and the printed comparison too
    for label in ("1: Alpha CPU · 1 threads · numba 0.61.0 · commit 1111111",
                  "2: Beta CPU · 1 threads · numba 0.62.0 · commit 2222222 (dirty)",
                  "3: Gamma CPU · 4 threads · numba 0.63.0 · commit 3333333"):
        assert label.split(": ", 1)[1] in text
    assert "rows not in every run" in text


def test_every_panel_has_a_legend_naming_every_run_in_distinct_styles(three_runs):
    loaded = compare.load(list(three_runs))
    labels = [f"{k}: {compare.run_label(df, meta)}" for k, (_, df, meta) in enumerate(loaded, start=1)]
    assert labels[2] == "3: Gamma CPU · 4 threads · numba 0.63.0 · commit 3333333"
    figures = compare.speedup_figures(loaded)
    assert [f for f, _, _ in figures] == ["tanh", "isru", "exp"]
    import matplotlib.pyplot as plt

    for function, fig, _ in figures:
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert panels
        for ax in panels:
            legend = [t.get_text() for t in ax.get_legend().get_texts()]
            assert [l.replace(" (no rows)", "") for l in legend] == labels, (function, legend)
            lines = ax.get_legend().legend_handles
            styles = {(tuple(plt.matplotlib.colors.to_rgba(h.get_color())), h.get_marker()) for h in lines}
            colours = {s[0] for s in styles}
            markers = {s[1] for s in styles}
            assert len(colours) == len(markers) == len(labels)  # colour AND marker tell runs apart
        # the exp chart: only run 3 has the row, the others say so in the legend
        if function == "exp":
            assert [t.get_text().endswith("(no rows)") for t in panels[0].get_legend().get_texts()] == \
                [True, True, False]
        # the speedups plotted are the CSV's, per run
        if function == "tanh":
            ax = panels[0]
            ys = [list(line.get_ydata()) for line in ax.get_lines() if line.get_label() in labels]
            assert ys == [[4.0, 4.0], [8.0, 8.0], [2.0, 2.0]]
        plt.close(fig)


@pytest.mark.parametrize("option", ["--html", "--csv"])
def test_existing_or_unwritable_outputs_refused(three_runs, tmp_path, capsys, option):
    old = tmp_path / "old.out"
    old.write_text("earlier\n")
    code, out, err = run(["compare", *three_runs, option, old], capsys)
    assert code == 2 and err.count("\n") == 1 and "never overwritten" in err and out == ""
    assert old.read_text() == "earlier\n"
    code, out, err = run(["compare", *three_runs, option, tmp_path / "no" / "such" / "f"], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err and "Traceback" not in err
    # refused before any work: the other output is not written either
    other = tmp_path / "other.html"
    code, _, _ = run(["compare", *three_runs, option, old, "--html" if option == "--csv" else "--csv", other],
                     capsys)
    assert code == 2 and not other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.out", "r1", "r2", "r3"]


def test_one_run_or_a_bad_folder_is_one_line(three_runs, tmp_path, capsys):
    for given in ([three_runs[0]], []):
        code, _, err = run(["compare", *given], capsys)
        assert code == 2 and err.startswith("mathbench compare: error: compare needs at least two run folders")
        assert err.count("\n") == 1
    code, _, err = run(["compare", *three_runs, tmp_path / "nothing"], capsys)
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    bad = make_run(tmp_path / "bad", [])
    (bad / runs.RESULTS).write_text("a,b\n1,2\n")
    code, _, err = run(["compare", *three_runs, bad], capsys)
    assert code == 2 and "run folder 4 is not a mathbench run" in err


def test_same_file_for_two_outputs_refused_before_any_work(three_runs, tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / "out.txt"  # the same file spelled two ways
    code, out, err = run(["compare", *three_runs, "--csv", tmp_path / "out.txt", "--html", same], capsys)
    assert code == 2 and "--csv and --html name the same file" in err and err.count("\n") == 1 and out == ""
    assert not (tmp_path / "out.txt").exists()


def test_a_failure_while_drawing_writes_nothing(three_runs, tmp_path, capsys, monkeypatch):
    def broken(loaded, text):
        raise compare.UsageError("drawing failed")

    monkeypatch.setattr(compare, "html_page", broken)
    csv, missing, page = tmp_path / "a.csv", tmp_path / "m.csv", tmp_path / "p.html"
    code, out, err = run(["compare", *three_runs, "--csv", csv, "--missing-csv", missing, "--html", page], capsys)
    assert code == 2 and "drawing failed" in err
    assert not csv.exists() and not missing.exists() and not page.exists()


def test_no_chart_for_references(tmp_path):
    """copy (no registry entry) and plus (the x+c baseline) carry a ratio to tanh; it is not a
    comparison of theirs, so neither gets a chart, while an activation with only that ratio does."""
    def rows(scale):
        out = base_rows(scale)
        for function in ("copy", "plus", "sigmoid"):
            out += [_row(function, "numba", size, 0.3 * scale, speedup_vs_tanh=6.0, speedup_vs_tanh_lo=5.0,
                         speedup_vs_tanh_hi=7.0) for size in SIZES]
        return out

    loaded = compare.load([make_run(tmp_path / "a", rows(1.0)), make_run(tmp_path / "b", rows(0.5))])
    figures = compare.speedup_figures(loaded)
    import matplotlib.pyplot as plt

    assert [f for f, _, _ in figures] == ["tanh", "isru", "sigmoid"]
    titles = [fig._suptitle.get_text() for _, fig, _ in figures]
    assert not [t for t in titles if t.startswith(("copy", "plus"))]
    assert titles[2].startswith("sigmoid (forward): time of Numba's libm tanh loop")
    for _, fig, _ in figures:
        plt.close(fig)


def test_minor_tick_labels_do_not_crowd():
    """Over a decade or more a log axis labels at most 2x and 5x between powers of ten."""
    import matplotlib.pyplot as plt

    for lo, hi, labelled in ((0.5, 3.0, {0.5, 0.6, 0.7, 0.8, 0.9, 2.0, 3.0}), (0.02, 1.5, {0.02, 0.05, 0.2, 0.5}),
                             (1e-3, 1e2, set())):
        fig, ax = plt.subplots()
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        compare._minor_labels(ax)
        fig.canvas.draw()
        shown = {round(float(t.get_text()), 6) for t in ax.yaxis.get_minorticklabels()
                 if t.get_text() and lo <= t.get_position()[1] <= hi}
        assert shown == labelled, (lo, hi, shown)
        plt.close(fig)
