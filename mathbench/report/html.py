"""One self-contained HTML page from text, tables and matplotlib figures: inline CSS, figures
embedded as base64 PNG, no script and no link to anything, so the file opens offline and can be
mailed or archived on its own. Reporting only: nothing here measures.

The pieces return HTML fragments (strings, every text escaped) that ``page`` joins into a
document; ``write_page`` writes it once, atomically, and never over an existing file.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Iterable, Sequence

from ..core.errors import UsageError

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto;
       max-width: 1400px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: .6em; overflow-x: auto; font-size: .8em; }
code { background: #f2f2f2; padding: 0 .2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
ul.findings li { margin-bottom: .3em; }
.note { color: #8a4b00; }
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def figure_html(fig, alt: str, caption: str | None = None, dpi: int = 100) -> str:
    """A matplotlib figure as an embedded PNG ``<img>`` (with alt text, and an optional caption);
    the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">{cap}</figure>'


def table_html(rows: Iterable[Sequence], headers: Sequence) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pre(text: str) -> str:
    """Preformatted text (the commands' fixed-width summary tables, as they print)."""
    return f"<pre>{esc(text)}</pre>"


def paragraph(text: str, cls: str | None = None) -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def bullets(items: Iterable[str], cls: str | None = None) -> str:
    li = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f'<ul class="{esc(cls)}">{li}</ul>' if cls else f"<ul>{li}</ul>"


def heading(text: str, level: int = 3) -> str:
    return f"<h{level}>{esc(text)}</h{level}>"


def page(title: str, sections: Iterable[tuple[str, Iterable[str] | str]]) -> str:
    """The whole document: ``sections`` are (heading, HTML fragments) pairs, in order."""
    parts = []
    for name, body in sections:
        body = body if isinstance(body, str) else "\n".join(body)
        parts.append(f"<section>\n<h2>{esc(name)}</h2>\n{body}\n</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{esc(title)}</h1>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def check_target(path) -> Path:
    """Refuse an output path before any work: an existing file (earlier results are never
    overwritten) or a folder that does not exist or is not writable, as one-line UsageErrors."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise UsageError(f"{path} exists; earlier results are never overwritten (choose a new file name)")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: folder {parent} is not writable")
    return path


def write_page(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then a hard
    link to the final name, which fails rather than replace a file that appeared meanwhile (on a
    file system without hard links: a rename after the existence check)."""
    path = check_target(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise UsageError(f"{path} exists; earlier results are never overwritten (choose a new file name)") \
                from None
        except OSError:  # no hard links here (some network or FAT file systems)
            if path.exists():
                raise UsageError(f"{path} exists; earlier results are never overwritten") from None
            os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _short(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_short(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}={_short(x)}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _commit(git: dict) -> str:
    """'abc... (dirty)', '(clean)', or what is not known said so (not 'None (clean)')."""
    if not git:
        return "-"
    state = {True: "dirty", False: "clean"}.get(git.get("dirty"), "unknown state")
    return f"{git.get('commit') or 'unknown'} ({state})"


def machine_rows(meta: dict, run_dir=None) -> list[list[str]]:
    """(what, value) rows of the machine and provenance every run's metadata.json records
    (``core.runs.metadata``): the command, when, the commit, the CPU, versions and threads."""
    git = meta.get("git") or {}
    cpu = meta.get("cpu") or {}
    th = meta.get("threads") or {}
    blas = ", ".join(sorted({f"{b.get('api')} {b.get('threads')} thread(s)" for b in th.get("blas") or []})) or "-"
    rows = [["run folder", str(run_dir)] if run_dir is not None else None,
            ["command", meta.get("command", "-")],
            ["kind", meta.get("kind", "-")],
            ["created", meta.get("created", "-")],
            ["finished", _short(meta.get("finished"))],
            ["git commit", _commit(git)],
            ["CPU", f"{cpu.get('model', '?')}, {meta.get('cores', '?')} cores, {meta.get('machine', '')}"],
            ["CPU flags", _short(cpu.get("flags") or [])],
            ["OS", meta.get("platform") or meta.get("os") or "-"],
            ["SVML", _short(meta.get("svml"))],
            ["versions", _short(meta.get("versions") or {})],
            ["threads", f"Numba {th.get('numba_threads', '?')} (layer {th.get('numba_threading_layer', '?')}); "
                        f"BLAS {blas}; torch {_short(th.get('torch_threads'))}"
                        + (f"; environment {_short(th['env'])}" if th.get("env") else "")]]
    return [r for r in rows if r is not None]


def machine_html(meta: dict, run_dir=None, extra: Sequence[Sequence] = ()) -> str:
    """The machine and provenance as a two-column table, with the caller's ``extra`` rows after."""
    return table_html([*machine_rows(meta, run_dir), *[[a, _short(b)] for a, b in extra]], ["what", "value"])


def settings_html(settings: dict) -> str:
    """A run's recorded settings (a flat or shallow dict) as a two-column table."""
    return table_html([[k, _short(v)] for k, v in settings.items()], ["setting", "value"])
