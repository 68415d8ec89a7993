"""Run folders: a tidy CSV written row by row plus a JSON metadata sidecar.

Every benchmark (mathbench kernels, the LSTM sweep) writes one folder per run:
``results.csv`` (one row per measured configuration, appended and flushed as each finishes, so an
interrupted run keeps what it finished) and ``metadata.json`` (machine, versions, threads,
command line, git commit). Kernel runs also write ``samples.csv`` (SAMPLE_COLUMNS: every worker
process's per-round seconds per call behind each row, a group's block appended just before its
rows). Reports, plots and notebooks only read these files.
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import itertools
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Optional

from .errors import UsageError

RESULTS = "results.csv"
METADATA = "metadata.json"
SAMPLES = "samples.csv"
#: samples.csv, long format: a results row's key, then one line per (worker process, round)
SAMPLE_KEY = ["function", "form", "impl", "dtype", "size", "threads"]
SAMPLE_COLUMNS = SAMPLE_KEY + ["process", "round", "seconds_per_call", "repeats"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def default_runs_dir() -> Path:
    """Where runs without ``--out`` go: ``runs/`` of the source checkout when run from one (ignored
    by git; the committed reference runs live in ``results/``), else ./runs."""
    root = PROJECT_ROOT
    if (root / "pyproject.toml").exists() and (root / "results").is_dir():
        return root / "runs"
    return Path.cwd() / "runs"


def _writable_parent(path: Path) -> None:
    parent = path.parent if not path.exists() else path
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {path}: {parent} is not writable")


#: Created exclusively (O_EXCL) in a new run folder: of two processes handed the same empty folder
#: only one gets it. Removed when the first metadata.json is written, which then marks it as taken.
CLAIM = ".claimed"


def _claim(path: Path) -> bool:
    try:
        fd = os.open(path / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as e:
        raise UsageError(f"cannot write to {path}: {e.strerror or e}") from None
    os.close(fd)
    return True


def _mkdir(path: Path, exist_ok: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        raise
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror or e}") from None


def new_run_dir(kind: str, out: Optional[str] = None, resume: bool = False) -> Path:
    """Create the folder for a new run and return it; safe against concurrent processes.

    ``out=None``: ``runs/<kind>-<timestamp>`` (suffixed ``-2``, ``-3``... if taken), made with an
    exclusive mkdir, so two processes started in the same second get different folders.
    ``out`` given: it must not hold an earlier run, unless ``resume`` is True and it is a run
    folder of the same kind (then it is reused and its finished rows are kept); an existing empty
    folder is claimed exclusively (CLAIM).
    """
    if out is None:
        base = default_runs_dir()
        _writable_parent(base)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for n in itertools.count(1):
            path = base / (f"{kind}-{stamp}" if n == 1 else f"{kind}-{stamp}-{n}")
            try:
                _mkdir(path, exist_ok=False)
            except FileExistsError:
                continue
            if _claim(path):
                return path
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not resume:
            raise UsageError(f"--out {path} already holds files; earlier results are never overwritten, "
                             "choose a new folder")
        if not (path / METADATA).exists():
            raise UsageError(f"--out {path} is not empty and is not a {kind} run folder; choose a new folder")
        meta = read_metadata(path)
        if meta.get("kind") != kind:
            raise UsageError(f"--out {path} is a {meta.get('kind')!r} run, not a {kind} run")
        if not os.access(path, os.W_OK):
            raise UsageError(f"cannot write to {path}")
        return path
    _writable_parent(path)
    _mkdir(path, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise UsageError(f"cannot write to {path}")
    if not _claim(path):
        raise UsageError(f"--out {path} was just taken by another run; choose a new folder")
    return path


def abandon(run_dir: Path) -> None:
    """Remove a run folder that never received its metadata (e.g. the disk was full)."""
    (Path(run_dir) / CLAIM).unlink(missing_ok=True)
    try:
        Path(run_dir).rmdir()
    except OSError:
        pass  # not empty: keep whatever is there


# --------------------------------------------------------------------------------------------
# metadata


def _cpu() -> dict:
    info = {"model": platform.processor() or platform.machine(), "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            key, _, val = line.partition(":")
            key = key.strip()
            if key == "model name" and info["model"] in ("", platform.machine(), platform.processor()):
                info["model"] = val.strip()
            elif key in ("flags", "Features") and not info["flags"]:
                info["flags"] = sorted(f for f in val.split() if f.startswith(("sse", "avx", "fma", "asimd", "sve", "neon")))
    except OSError:
        pass
    return info


def git_state() -> dict:
    """Commit and whether tracked files differ from it (reference runs come from a clean tree)."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=PROJECT_ROOT, capture_output=True, text=True,  # noqa: E731
                                        timeout=5)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "numba", "llvmlite", "scipy", "sympy", "pandas", "torch"):
        m = sys.modules.get(mod)
        if m is None and mod != "torch":
            try:
                m = __import__(mod)
            except ImportError:
                m = None
        out[mod] = getattr(m, "__version__", None) if m else None
    return out


def machine_metadata() -> dict:
    import numba

    from .threads import thread_info

    return {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "versions": _versions(),
        "svml": bool(getattr(numba.config, "USING_SVML", False)),
        "threads": thread_info(),
    }


def _read(path) -> Optional[str]:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cpufreq() -> Optional[dict]:
    """Governor, driver and frequencies from cpufreq sysfs (None where the kernel or a VM does
    not expose it); ``cpuinfo_mhz`` from /proc/cpuinfo, which VMs often still report."""
    def mhz(path) -> Optional[float]:  # sysfs gives kHz
        v = _read(path)
        return int(v) / 1000 if v and v.isdigit() else None

    cpus = sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq"), key=lambda p: int(p.parent.name[3:]))
    per_cpu = [{"cpu": int(p.parent.name[3:]), "governor": _read(p / "scaling_governor"),
                "cur_mhz": mhz(p / "scaling_cur_freq"), "max_mhz": mhz(p / "scaling_max_freq")} for p in cpus]
    cpuinfo = [float(line.split(":")[1]) for line in (_read("/proc/cpuinfo") or "").splitlines()
               if line.startswith("cpu MHz")]
    if not per_cpu and not cpuinfo:
        return None
    return {"governors": sorted({c["governor"] for c in per_cpu if c["governor"]}),
            "driver": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_driver"),
            "boost": _read("/sys/devices/system/cpu/cpufreq/boost"),
            "intel_no_turbo": _read("/sys/devices/system/cpu/intel_pstate/no_turbo"),
            "per_cpu": per_cpu, "cpuinfo_mhz": cpuinfo}


def _proc_times() -> dict:
    """pid -> (name, parent pid, user + system CPU ticks) for every readable process."""
    out = {}
    for p in Path("/proc").glob("[0-9]*"):
        stat = _read(p / "stat")
        if not stat:
            continue
        # the name is parenthesised and may contain spaces: split after its closing parenthesis
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        f = stat[stat.rfind(")") + 2:].split()
        try:
            out[int(p.name)] = (name, int(f[1]), int(f[11]) + int(f[12]))
        except (IndexError, ValueError):
            continue
    return out


BUSY_PERCENT = 20.0  # % of one core: a process using more competes with the benchmark


def busy_processes(interval: float = 0.2, threshold: float = BUSY_PERCENT, top: int = 5) -> Optional[list]:
    """Other processes using at least ``threshold`` % of a core over ``interval`` seconds, busiest
    first; this process and its descendants (worker processes) are not "other". None without /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    import time

    t0 = _proc_times()
    time.sleep(interval)
    t1 = _proc_times()
    ours = {os.getpid()}
    grew = True
    while grew:  # close the set of our descendants
        new = {pid for pid, (_, ppid, _) in t1.items() if ppid in ours} - ours
        ours |= new
        grew = bool(new)
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = []
    for pid, (name, _, ticks) in t1.items():
        if pid in ours or pid not in t0:
            continue
        pct = 100.0 * (ticks - t0[pid][2]) / tick / interval
        if pct >= threshold:
            busy.append({"pid": pid, "name": name, "cpu_percent": round(pct, 1)})
    return sorted(busy, key=lambda b: -b["cpu_percent"])[:top]


def machine_state() -> dict:
    """What the machine was doing besides us, now (recorded before and after a run)."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "load_average": load, "busy_processes": busy_processes(), "cpufreq": _cpufreq()}


def record_end_state(meta: dict) -> None:
    """Add the machine state after the run; runners call this just before the final metadata write."""
    meta.setdefault("machine_state", {})["after"] = machine_state()


def metadata(kind: str, argv: Iterable[str], **extra) -> dict:
    """The sidecar's common part. ``git.dirty``: reference runs must come from a clean tree;
    ``machine_state.before`` (``.after`` via ``record_end_state``): was the machine quiet?"""
    return {
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name if sys.argv else kind, *argv]),
        "argv": list(argv),
        "git": git_state(),
        **machine_metadata(),
        "machine_state": {"before": machine_state()},
        **extra,
    }


QUIET_LOAD_PER_CORE = 0.5  # 1-minute load average per core before a run on an otherwise idle machine
UNSTABLE_WIDTH = 0.2  # an interval wider than this fraction of its median is "wide"
UNSTABLE_SHARE = 0.1  # ... and more than this share of rows with wide intervals is "unstable"


def machine_warning(meta: dict) -> Optional[str]:
    """One line when the metadata says the machine was not quiet, else None."""
    state = meta.get("machine_state") or {}
    cores = meta.get("cores") or os.cpu_count() or 1
    why = []
    load = (state.get("before") or {}).get("load_average")
    if load and load[0] > QUIET_LOAD_PER_CORE * cores:
        why.append(f"load average {load[0]:.2f} on {cores} cores before the run")
    busy = {b["pid"]: b for s in ("before", "after") for b in ((state.get(s) or {}).get("busy_processes") or [])}
    if busy:
        why.append("other busy processes: " + ", ".join(f"{b['name']} ({b['pid']}, {b['cpu_percent']:.0f}%)"
                                                        for b in list(busy.values())[:3]))
    if not why:
        return None
    return f"warning: the machine was not quiet ({'; '.join(why)}); timings may be slow or noisy"


def unstable_warning(df, mid: str, lo: str, hi: str, what: str) -> Optional[str]:
    """One line when many rows have wide intervals (``(hi - lo) / mid``), else None."""
    d = df[[mid, lo, hi]].dropna() if all(c in df.columns for c in (mid, lo, hi)) else df.iloc[:0]
    d = d[d[mid] > 0]
    if d.empty:
        return None
    width = (d[hi] - d[lo]) / d[mid]
    wide = int((width > UNSTABLE_WIDTH).sum())
    if wide <= UNSTABLE_SHARE * len(d):
        return None
    return (f"warning: results look unstable: {wide} of {len(d)} rows have an interval of {what} wider than "
            f"{UNSTABLE_WIDTH:.0%} of the median (widest {width.max():.0%}); repeat the run on a quiet machine")


def write_json(path: Path, data: dict) -> None:
    """Atomic write: a reader never sees half a file, and a failed write (a full disk) leaves the
    previous version and no temporary file behind (UsageError)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    if path.name == METADATA:
        (path.parent / CLAIM).unlink(missing_ok=True)  # metadata now marks the folder as taken


def read_metadata(run_dir: Path) -> dict:
    try:
        return json.loads((Path(run_dir) / METADATA).read_text())
    except FileNotFoundError:
        raise UsageError(f"{run_dir} is not a run folder: no {METADATA}") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"{run_dir}/{METADATA} is malformed: {e}") from None


# --------------------------------------------------------------------------------------------
# results CSV


class ResultsWriter:
    """Append rows to ``results.csv`` (or ``name``) one at a time, or a block at once
    (``write_many``), each written whole and fsynced, so an interrupted run keeps every finished
    row. A write that cannot complete (a full disk) is cut off again and reported as a
    UsageError; a torn last line (killed mid-write) is dropped when the file is reopened."""

    def __init__(self, run_dir: Path, columns: list[str], name: str = RESULTS):
        self.path = Path(run_dir) / name
        self.columns = list(columns)
        existing = self.path.exists() and self.path.stat().st_size > 0
        if existing:
            self._repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not existing:
            try:
                self._append(self.columns)
            except UsageError:
                self.close()
                raise

    def _repair(self) -> None:
        text = self.path.read_text()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text)
        header = next(csv.reader(io.StringIO(text)), [])
        if header != self.columns:
            raise UsageError(f"{self.path} has different columns; it was written by another version")

    def _append(self, *lines: list) -> None:
        text = io.StringIO()
        csv.writer(text).writerows(lines)  # "\r\n"-terminated, as before
        data = memoryview(text.getvalue().encode())
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(self._fd, data):]
            os.fsync(self._fd)
        except OSError as e:
            try:
                os.ftruncate(self._fd, start)  # no torn row: back to the last whole line
            except OSError:
                pass
            raise UsageError(f"cannot write {self.path}: {e.strerror or e} (the rows before are kept)") from None

    def _cells(self, row: dict) -> list:
        extra = set(row) - set(self.columns)
        if extra:
            raise ValueError(f"row has columns not in {self.path.name}: {sorted(extra)}")
        return [_cell(row.get(k)) for k in self.columns]

    def write(self, row: dict) -> None:
        self._append(self._cells(row))

    def write_many(self, rows: list) -> None:
        """Append rows as one write and one fsync: after a write error none of them are kept (a
        kill mid-write can still leave a prefix: readers of such blocks check their counts)."""
        if rows:
            self._append(*(self._cells(r) for r in rows))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return v


def _whole_rows(path: Path) -> str:
    """The text of a results file without torn rows (cut mid-line by a crash, or with the wrong
    number of fields), which are dropped with one warning line on stderr."""
    text = path.read_text()
    lines = text.split("\n")
    tail = lines.pop()  # "" if the file ends with a newline; else a row cut mid-line
    if not lines:
        return text
    width = len(next(csv.reader([lines[0]]), []))
    whole = [lines[0]] + [ln for ln in lines[1:] if len(next(csv.reader([ln]), [])) == width]
    torn = len(lines) - len(whole) + (tail != "")
    if torn:
        print(f"warning: {path}: dropped {torn} torn row{'s' if torn > 1 else ''} (cut mid-line)",
              file=sys.stderr)
    return "\n".join(whole) + "\n"


def read_rows(run_dir: Path):
    """The finished rows of a run as a pandas DataFrame (UsageError if missing or malformed)."""
    import pandas as pd

    path = Path(run_dir) / RESULTS
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir} is not a folder")
    if not path.exists():
        raise UsageError(f"{run_dir} is not a run folder: no {RESULTS}")
    try:
        return pd.read_csv(io.StringIO(_whole_rows(path)))
    except Exception as e:  # pandas raises several parser error types
        raise UsageError(f"{path} is malformed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def load_run(run_dir) -> tuple:
    """(rows DataFrame, metadata dict) of a run folder; UsageError if it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UsageError(f"{run_dir} does not exist")
    meta = read_metadata(run_dir)
    return read_rows(run_dir), meta
