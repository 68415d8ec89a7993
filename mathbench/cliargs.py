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


def progress_factory(disabled: bool):
    """``factory(**tqdm_kwargs)`` for progress bars on stderr: like pytest and pip, a bar on a
    terminal and nothing in a log file (or with ``--no-progress``)."""
    import sys

    from tqdm import tqdm

    def factory(**kw):
        return tqdm(file=sys.stderr, disable=disabled or not sys.stderr.isatty(), leave=False,
                    dynamic_ncols=True, **kw)

    return factory
