"""Comma-separated option values, shared by the mathbench and lstm_numba command lines."""
from __future__ import annotations

import math

from .errors import UsageError


def split_list(text: str, what: str) -> list[str]:
    """``"a, b,,c"`` -> ["a", "b", "c"]; an empty list is a UsageError naming ``--what``."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UsageError(f"--{what} is empty")
    return items


def positive_ints(text: str, what: str) -> list[int]:
    """Whole positive numbers, also written as 1e5; duplicates dropped, order kept."""
    out = []
    for tok in split_list(text, what):
        try:
            v = float(tok)
        except ValueError:
            raise UsageError(f"--{what} {tok!r}: not a whole number") from None
        if not math.isfinite(v) or v != int(v):
            raise UsageError(f"--{what} {tok!r}: not a whole number")
        if v < 1:
            raise UsageError(f"--{what} {tok}: must be positive")
        out.append(int(v))
    return list(dict.fromkeys(out))


def choices(text: str, what: str, valid, noun: str) -> list[str]:
    """Names from ``valid``; an unknown one is a UsageError listing the valid names."""
    items = list(dict.fromkeys(split_list(text, what)))
    for item in items:
        if item not in valid:
            raise UsageError(f"unknown {noun} {item!r}; valid: {', '.join(valid)}")
    return items


class PlainProgress:
    """tqdm's interface (update, set_postfix_str, close) as sparse plain lines on stderr, for logs,
    ``tee`` and CI: a line when a phase starts and ends, and in between at each further 10% if
    at least ``every`` seconds passed since the last line, so a long cold run is never silent and
    a log is never flooded."""

    def __init__(self, total=None, desc="", unit="it", initial=0, every=5.0, **_ignored):
        import time

        self.total, self.desc, self.n, self.every = total, desc, initial, every
        self.unit = "" if unit == "it" else f" {unit}"  # tqdm's default unit says nothing
        self._clock, self._postfix, self._tenth = time.perf_counter, "", 0
        self._t0 = self._last = self._clock()
        self._line(f"start, {total}{self.unit}" if total else "start")

    def _line(self, text: str) -> None:
        import sys

        print(f"{self.desc}: {text}" + (f" ({self._postfix})" if self._postfix else ""), file=sys.stderr, flush=True)
        self._last = self._clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n < self.total:
            tenth = 10 * self.n // self.total
            if tenth > self._tenth and self._clock() - self._last >= self.every:
                self._tenth = tenth
                self._line(f"{self.n}/{self.total}{self.unit}, {self._clock() - self._t0:.0f} s")

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s

    def close(self) -> None:
        if self._t0 is not None:
            self._postfix = ""
            self._line(f"done, {self.n}{self.unit} in {self._clock() - self._t0:.1f} s")
            self._t0 = None


def progress_factory(disabled: bool):
    """``factory(**tqdm_kwargs)`` for progress on stderr: a tqdm bar on a terminal, sparse plain
    lines elsewhere (PlainProgress), nothing with ``--no-progress``."""
    import sys

    from tqdm import tqdm

    def factory(**kw):
        if not disabled and not sys.stderr.isatty():
            return PlainProgress(**kw)
        return tqdm(file=sys.stderr, disable=disabled, leave=False, dynamic_ncols=True, **kw)

    return factory
