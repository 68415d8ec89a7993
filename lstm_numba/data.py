"""Data for the LSTM benchmark: embedded offline defaults and loaders for real files.

Two tasks:

``lm``        character language model. Default: an English-like corpus generated here from
              embedded word lists by a fixed pseudo-random generator (no download, identical on
              every machine and numpy version). ``--data FILE``: any UTF-8 text file.
``classify``  binary classification of multivariate sensor windows (label at the window end).
              Default: a seeded synthetic office whose hidden occupancy drives temperature,
              humidity, light, CO2 and humidity ratio plus noise. Real data: the UCI Occupancy
              Detection CSV format (``--occupancy-train`` / ``--occupancy-test``).

Every problem with a file (missing, empty, truncated, malformed, missing columns, non-numeric or
non-finite values, times out of order, too short for the sequence length) raises
:class:`mathbench.UsageError` with the file name and, where it applies, the line number; the
CLI turns it into one line and exit code 2.

Every data set carries ``sha256``, a hash of its content (of the file's bytes; for the embedded
sets, of the generated arrays), and ``record``, ``{"source": "embedded" or the absolute path,
"sha256": ...}``: what a saved model keeps so that ``predict`` can find and verify its data.

Batches are time-major, the layout of the Numba LSTM: character ids ``(T, B)`` int64 (what the
model and torch index with, so no conversion happens inside a timed call), sensor windows
``(T, B, 5)`` float; labels ``(B,)`` int32.
"""
from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from mathbench import UsageError

#: Fraction of a text that is held out (its tail) for the held-out loss.
HELD_OUT_FRACTION = 0.1

#: Fraction of the training part (text or training series) carved off its end for validation:
#: time-ordered, so validation is "later" than what the model fits, as the test part is. Training
#: reads only the rest; early stopping and checkpoint choice read validation; the test part is
#: scored once, at the chosen checkpoint.
VALIDATION_FRACTION = 0.1

#: The ``source`` of the data sets generated here.
EMBEDDED = "embedded"


def data_record(source: str, sha256: str) -> dict:
    """What a model records about its data: the embedded set by name, a file by absolute path
    (so that ``predict`` finds it from any working folder), each with its content hash."""
    return {"source": source if source == EMBEDDED else str(Path(source).resolve()), "sha256": sha256}


def describe_record(record: dict) -> str:
    return f"{record['source']} (sha256 {record['sha256'][:12]})"

# ============================================================================================
# A tiny deterministic generator (SplitMix64): the embedded corpus must be byte-identical on
# every machine and every numpy / Python version, so it does not use either library's RNG.

_MASK = (1 << 64) - 1


class _SplitMix64:
    def __init__(self, seed: int):
        self.state = (int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E5) & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n  # bias < n / 2**64: irrelevant here

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def chance(self, p: float) -> bool:
        return self.next() < p * 2.0 ** 64


# ============================================================================================
# Embedded character corpus

_NOUNS = ("river", "garden", "window", "teacher", "harbour", "lantern", "winter", "letter", "mountain",
          "village", "stranger", "kettle", "market", "sailor", "orchard", "candle", "bridge", "doctor",
          "forest", "meadow", "station", "daughter", "engine", "island", "kitchen", "painter", "road",
          "shadow", "storm", "table", "valley", "wagon", "baker", "clock", "field", "horse", "miller",
          "morning", "evening", "ocean", "farmer", "house", "child", "king", "book", "door", "fire",
          "wind", "stone", "bird", "ship", "light", "night", "voice", "traveller", "captain", "soldier",
          "widow", "school", "church", "mill", "well", "castle", "cottage", "hill", "boat", "coat")
_ADJS = ("old", "quiet", "bright", "cold", "narrow", "patient", "little", "heavy", "golden", "silent",
         "early", "gentle", "broken", "distant", "empty", "careful", "green", "grey", "strange",
         "simple", "warm", "tired", "wild", "small", "great", "dark", "long", "honest", "proud", "young")
_VERBS_T = ("watched", "carried", "found", "opened", "followed", "remembered", "painted", "crossed",
            "mended", "visited", "answered", "noticed", "closed", "wanted", "reached", "lifted",
            "passed", "praised", "left", "kept", "sold", "bought", "heard", "saw", "loved", "forgot")
_VERBS_I = ("waited", "slept", "laughed", "listened", "wandered", "returned", "smiled", "worked",
            "rested", "sang", "hurried", "vanished", "stayed", "spoke", "turned", "began", "arrived")
_ADVS = ("slowly", "quietly", "again", "at last", "once more", "without a word", "in the rain",
         "before dawn", "after supper", "for a while", "all day", "that night", "by the fire")
_PREPS = ("near", "beyond", "under", "behind", "across", "beside", "above", "toward", "past", "along")
_NAMES = ("Anna", "Tom", "Martha", "John", "Elsie", "Peter", "Rose", "Walter", "Mary", "Henry")
_CONJ = ("and", "but", "so", "while", "until", "because", "when")
_SAYING = ("Where are you going", "It will rain tonight", "I have seen this before", "Come back soon",
           "We must leave at once", "The road is long", "Nobody knows the answer", "Look at the sky",
           "There is bread on the table", "Do not be afraid", "Who left the door open")


def _np(r: _SplitMix64) -> str:
    noun = r.choice(_NOUNS)
    if r.chance(0.55):
        noun = r.choice(_ADJS) + " " + noun
    if r.chance(0.25):
        return r.choice(_NAMES) + "'s " + noun
    det = r.choice(("the", "the", "the", "a", "her", "his", "their", "that", "every"))
    if det == "a" and noun[0] in "aeiou":
        det = "an"
    np_ = det + " " + noun
    if r.chance(0.2):
        np_ += " " + r.choice(_PREPS) + " the " + r.choice(_NOUNS)
    return np_


def _clause(r: _SplitMix64) -> str:
    subj = r.choice(_NAMES) if r.chance(0.35) else _np(r)
    if r.chance(0.55):
        s = f"{subj} {r.choice(_VERBS_T)} {_np(r)}"
    else:
        s = f"{subj} {r.choice(_VERBS_I)}"
        if r.chance(0.5):
            s += f" {r.choice(_PREPS)} {_np(r)}"
    if r.chance(0.35):
        s += " " + r.choice(_ADVS)
    return s


def _sentence(r: _SplitMix64) -> str:
    k = r.below(10)
    if k == 0:
        said = r.choice(_SAYING) + r.choice(("?", ".", "!")) if r.chance(0.5) else r.choice(_SAYING) + ","
        end = said[-1]
        if end == ",":
            return f'"{said}" said {r.choice(_NAMES)}.'
        return f'"{said}" {r.choice(_NAMES)} asked.' if end == "?" else f'"{said}"'
    s = _clause(r)
    if k <= 3:
        s += f", {r.choice(_CONJ)} {_clause(r)}"
    s = s[0].upper() + s[1:]
    if k == 9:
        return s + "; " + _clause(r) + "."
    return s + "."


def embedded_corpus(n_chars: int = 48_000, seed: int = 1) -> str:
    """English-like text of about ``n_chars`` characters, byte-identical for a given seed.

    Paragraphs of generated sentences over embedded word lists: a real (if small) vocabulary,
    punctuation, capitals, quotes and line breaks for the language model to learn.
    """
    if n_chars < 1:
        raise ValueError("n_chars must be positive")
    r = _SplitMix64(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        para = " ".join(_sentence(r) for _ in range(3 + r.below(5)))
        parts.append(para)
        size += len(para) + 2
    return "\n\n".join(parts)[:n_chars].rstrip() + "\n"


# ============================================================================================
# Text data


def _fingerprint(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TextData:
    """A character corpus split into training text and held-out tail, as int64 ids."""

    source: str        # "embedded" or the file path
    vocab: str         # the characters, sorted; id i is vocab[i]
    train: np.ndarray  # int64 ids: the training part, validation included (see val_from)
    test: np.ndarray   # int64 ids (held-out)
    fingerprint: str = field(default="")
    sha256: str = ""   # of the file's bytes; for the embedded corpus, its fingerprint
    val_from: Optional[int] = None  # train[val_from:] is validation, train[:val_from] what the model fits

    @property
    def fit(self) -> np.ndarray:
        """The part of the training text the model is fit on (all of it without a split)."""
        return self.train if self.val_from is None else self.train[:self.val_from]

    @property
    def val(self) -> np.ndarray:
        """The validation text: the end of the training text (empty without a split)."""
        return self.train[:0] if self.val_from is None else self.train[self.val_from:]

    @property
    def record(self) -> dict:
        return data_record(self.source, self.sha256)

    @property
    def n_vocab(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as e:
            raise UsageError(f"character {e.args[0]!r} is not in the vocabulary of {self.source}") from None

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in np.asarray(ids).ravel())

    def check_seq_len(self, seq_len: int) -> None:
        need = seq_len + 1
        val = self.val.size if self.val_from is not None else need
        if self.fit.size < need or self.test.size < need or val < need:
            raise UsageError(
                f"{self.source}: text too short for --seq-len {seq_len}: training part has "
                f"{self.fit.size} characters, validation part {val} and held-out part {self.test.size}; each "
                f"needs at least {need} (held-out is the last {HELD_OUT_FRACTION:.0%}, validation the last "
                f"{VALIDATION_FRACTION:.0%} of the rest)")

    def train_batch(self, rng: np.random.Generator, batch: int, seq_len: int):
        """Random training windows (never reaching into validation): inputs ``(T, B)`` and
        next-character targets ``(T, B)``."""
        fit = self.fit
        starts = rng.integers(0, fit.size - seq_len, size=batch)
        idx = starts[None, :] + np.arange(seq_len)[:, None]
        return fit[idx], fit[idx + 1]

    def eval_batches(self, seq_len: int, batch: int, max_chars: Optional[int] = None, part: str = "test"
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Consecutive non-overlapping windows covering the held-out text (``part="val"``: the
        validation text), at most ``max_chars`` predicted characters, ``batch`` windows at a time;
        the last batch may be smaller."""
        ids = self.val if part == "val" else self.test
        n_win = (ids.size - 1) // seq_len
        if max_chars is not None:
            n_win = max(1, min(n_win, max_chars // seq_len))
        starts = np.arange(n_win) * seq_len
        for b in range(0, n_win, batch):
            s = starts[b:b + batch]
            idx = s[None, :] + np.arange(seq_len)[:, None]
            yield ids[idx], ids[idx + 1]


def text_data(text: str, source: str, sha256: str = "") -> TextData:
    vocab = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
    cut = int(round(len(ids) * (1.0 - HELD_OUT_FRACTION)))
    train, test = ids[:cut], ids[cut:]
    fp = _fingerprint(ids)
    return TextData(source, vocab, train, test, fp, sha256 or fp, int(round(cut * (1.0 - VALIDATION_FRACTION))))


def default_text() -> TextData:
    """The embedded corpus (the default of ``--tasks lm``)."""
    return text_data(embedded_corpus(), EMBEDDED)


def read_utf8(path: Path, kind: str) -> tuple[str, str]:
    """The whole file as text, and the SHA-256 of its bytes; a folder, a missing or unreadable
    file, bytes that are not UTF-8, an empty or whitespace-only file and NUL characters are
    one-line UsageErrors naming the file (and the line of the first bad byte)."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder, not {kind}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UsageError(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})"
                         ) from None
    if not text:
        raise UsageError(f"{path} is empty")
    if not text.strip():
        raise UsageError(f"{path} contains only whitespace")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise UsageError(f"{path}: line {line}: contains a NUL character; is it a binary file?")
    return text, hashlib.sha256(raw).hexdigest()


def load_text(path) -> TextData:
    """Any UTF-8 text file (``--data``). The last 10% is held out."""
    path = Path(path)
    text, sha256 = read_utf8(path, "a text file")
    if len(set(text)) < 2:
        raise UsageError(f"{path}: needs at least two distinct characters for a language model")
    return text_data(text, str(path), sha256)


# ============================================================================================
# Sensor series (occupancy)

FEATURES = ("Temperature", "Humidity", "Light", "CO2", "HumidityRatio")
LABEL = "Occupancy"
OCCUPANCY_HEADER = ("date",) + FEATURES + (LABEL,)

#: Consecutive rows further apart than this many sampling steps (the file's median spacing) are
#: separated by a gap, and no window spans it. The UCI logs are sampled every 59-61 s: 1.5 steps
#: tolerates that jitter and splits at the first missing row.
GAP_STEPS = 1.5


@dataclass(frozen=True)
class Series:
    """One multivariate series in time order with a 0/1 label per row.

    ``start[i]`` is the first row of the gap-free segment holding row i (None: no gaps).
    """

    source: str
    x: np.ndarray  # (N, 5) float64, raw units
    y: np.ndarray  # (N,) int32 in {0, 1}
    start: Optional[np.ndarray] = None
    sha256: str = ""  # of the file's bytes; for an embedded series, of its arrays

    @property
    def record(self) -> dict:
        return data_record(self.source, self.sha256)


@dataclass(frozen=True)
class SensorData:
    """Train and test series, normalized with the training mean and standard deviation.

    A sample is a window of ``seq_len`` consecutive rows inside one gap-free segment; its label is
    the last row's label.
    """

    source: str
    train_x: np.ndarray  # (N, 5) float64, normalized: the training series, validation included
    train_y: np.ndarray  # (N,) int32
    test_x: np.ndarray
    test_y: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    fingerprint: str = field(default="")
    train_start: Optional[np.ndarray] = None  # as Series.start
    test_start: Optional[np.ndarray] = None
    record: dict = field(default_factory=dict)  # {"train": Series.record, "test": Series.record}
    # Training windows end before row val_from, validation windows at or after it (their inputs
    # may reach back before it: the labels are what is held out). None: no validation part.
    val_from: Optional[int] = None
    # seq_len -> the training windows' end rows: train_batch runs every step, the ends never change
    _train_ends: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    n_features = len(FEATURES)
    n_classes = 2

    def _part(self, part: str):
        if part in ("train", "val"):
            return self.train_x, self.train_y, self.train_start
        return self.test_x, self.test_y, self.test_start

    def _ends(self, part: str, seq_len: int, max_windows: Optional[int] = None) -> np.ndarray:
        """End rows of the windows of ``part`` that do not span a gap (``max_windows``: that many,
        evenly spaced)."""
        _, y, start = self._part(part)
        ends = np.arange(seq_len - 1, y.size)
        if part != "test" and self.val_from is not None:
            ends = ends[ends >= self.val_from] if part == "val" else ends[ends < self.val_from]
        if start is not None:
            ends = ends[ends - start[ends] >= seq_len - 1]
        if max_windows is not None and ends.size > max_windows:
            ends = ends[np.linspace(0, ends.size - 1, max_windows).round().astype(np.int64)]
        return ends

    def check_seq_len(self, seq_len: int, parts=("train", "val", "test"), what: str = "--seq-len") -> None:
        """Every part in ``parts`` must hold at least one window of ``seq_len`` rows."""
        for part in parts:
            if (part == "val" and self.val_from is None) or self._ends(part, seq_len).size:
                continue
            _, y, start = self._part(part)
            name = "test" if part == "test" else "training"
            if part == "train" and self.val_from is not None:  # windows end before the validation rows
                name = f"training (without its last {VALIDATION_FRACTION:.0%}, kept for validation)"
                y, start = y[:self.val_from], None if start is None else start[:self.val_from]
            if start is None or y.size < seq_len:
                raise UsageError(f"{self.source}: {name} series has {y.size:,} rows, fewer than {what} {seq_len}")
            longest = int(np.unique(start, return_counts=True)[1].max())
            raise UsageError(f"{self.source}: {name} series has no {seq_len} consecutive rows without a time gap "
                             f"(longest gap-free run: {longest:,} rows), fewer than {what} {seq_len}")

    @staticmethod
    def _windows(x, y, ends, seq_len, dtype):
        idx = ends[None, :] - (seq_len - 1) + np.arange(seq_len)[:, None]  # (T, B)
        return x[idx].astype(dtype, copy=False), y[ends]

    def train_batch(self, rng: np.random.Generator, batch: int, seq_len: int, dtype=np.float64):
        """Random training windows: inputs ``(T, B, 5)`` and labels ``(B,)``."""
        ends = self._train_ends.get(seq_len)
        if ends is None:
            ends = self._train_ends[seq_len] = self._ends("train", seq_len)
        ends = ends[rng.integers(0, ends.size, size=batch)]  # without gaps: the same draws as before
        return self._windows(self.train_x, self.train_y, ends, seq_len, dtype)

    def test_ends(self, seq_len: int, max_windows: Optional[int] = None) -> np.ndarray:
        """End rows of the test windows: every row from ``seq_len - 1`` on whose window spans no
        gap, or ``max_windows`` of them evenly spaced."""
        return self._ends("test", seq_len, max_windows)

    def eval_batches(self, seq_len: int, batch: int, max_windows: Optional[int] = None,
                     dtype=np.float64, part: str = "test") -> Iterator[tuple[np.ndarray, np.ndarray]]:
        x, y, _ = self._part(part)
        ends = self._ends(part, seq_len, max_windows)
        for b in range(0, ends.size, batch):
            yield self._windows(x, y, ends[b:b + batch], seq_len, dtype)

    def windows(self, part: str, seq_len: int, dtype=np.float64, max_windows: Optional[int] = None):
        """Every window of ``part`` ("train", "val" or "test") batch-major, as ``train.train`` takes
        them: X (N, T, 5) and y (N,) (``max_windows``: that many, evenly spaced)."""
        x, y, _ = self._part(part)
        X, Y = self._windows(x, y, self._ends(part, seq_len, max_windows), seq_len, dtype)
        return np.ascontiguousarray(X.transpose(1, 0, 2)), Y


def sensor_data(train: Series, test: Series, source: str, norm=None) -> SensorData:
    """The training series, whose last VALIDATION_FRACTION of rows label the validation windows,
    and the test series, both normalized with the fitted rows' mean and standard deviation, or
    with ``norm`` = (mean, std), a saved model's."""
    cut = int(round(train.y.size * (1.0 - VALIDATION_FRACTION)))
    fit_x = train.x[:cut]
    if norm is None:
        mean = fit_x.mean(axis=0)
        std = fit_x.std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant column stays constant (0) instead of NaN
    else:
        mean, std = norm
    scale = lambda a: (a - mean) / std  # noqa: E731
    return SensorData(source, scale(train.x), train.y, scale(test.x), test.y, mean, std,
                      _fingerprint(train.x, train.y, test.x, test.y), train.start, test.start,
                      {"train": train.record, "test": test.record}, cut)


def scored_series(test: Series, mean, std) -> SensorData:
    """``test`` alone (an empty training part), normalized with a saved model's statistics."""
    return sensor_data(Series(test.source, test.x[:0], test.y[:0]), test, test.source, (mean, std))


def synthetic_series(n_rows: int = 7200, seed: int = 7, start_minute: int = 9 * 60) -> Series:
    """A week-like office sensor log at one row per minute.

    A hidden occupancy state (a persistent Markov chain, likely in working hours on weekdays)
    drives the five sensors with lags and noise: CO2 relaxes toward a higher level while people
    are in, temperature and humidity follow slowly, the lights are usually on when occupied but
    daylight (and sometimes lights left off) blur that signal, so the label needs the history of
    several sensors, not one threshold on one row.
    """
    rng = np.random.default_rng(seed)
    minutes = np.arange(n_rows) + start_minute  # minute 0 is Monday 00:00
    hour = (minutes / 60.0) % 24
    day = (minutes // (24 * 60)) % 7
    working = (day < 5) & (hour >= 7.5) & (hour < 19)

    occ = np.zeros(n_rows, dtype=np.int32)
    lights_on = np.zeros(n_rows, dtype=bool)
    state, lamp = 0, True
    for i in range(n_rows):
        p_enter = 1 / 45 if working[i] else 1 / 4000
        p_leave = 1 / 150 if working[i] else 1 / 20
        if state == 0 and rng.random() < p_enter:
            state, lamp = 1, rng.random() > 0.2  # 1 in 5 stays work by daylight
        elif state == 1 and rng.random() < p_leave:
            state = 0
        occ[i] = state
        lights_on[i] = state == 1 and lamp

    daylight = np.clip(np.sin((hour - 6.5) / 13.0 * math.pi), 0, None)  # 06:30..19:30
    cloud = np.convolve(rng.normal(0, 1, n_rows + 119), np.ones(120) / 120, mode="valid")
    light = (daylight * (260 + 150 * cloud) + 420 * lights_on + rng.normal(0, 25, n_rows)).clip(0, None)

    co2 = np.empty(n_rows)
    c = 450.0
    for i in range(n_rows):
        target = 440.0 + 420.0 * occ[i]
        c += (target - c) / 35.0 + rng.normal(0, 4.0)
        co2[i] = c

    def lagged(u, tau):
        out, v = np.empty(n_rows), float(u[0])
        for i in range(n_rows):
            v += (u[i] - v) / tau
            out[i] = v
        return out

    occ_slow = lagged(occ.astype(float), 60.0)
    temp = 20.2 + 1.1 * occ_slow + 0.6 * np.sin((hour - 9) / 24 * 2 * math.pi) + rng.normal(0, 0.08, n_rows)
    drift = np.cumsum(rng.normal(0, 0.05, n_rows))
    humidity = 27.0 + (drift - drift.mean()) * 0.5 + 1.2 * occ_slow + rng.normal(0, 0.15, n_rows)
    # Humidity ratio (kg water / kg dry air) from temperature and relative humidity (Magnus formula).
    p_sat = 610.94 * np.exp(17.625 * temp / (temp + 243.04))
    p_w = humidity / 100.0 * p_sat
    ratio = 0.622 * p_w / (101325.0 - p_w) + rng.normal(0, 2e-5, n_rows)
    x = np.stack([temp, humidity, light, co2, ratio], axis=1)
    return Series(EMBEDDED, x, occ, sha256=_fingerprint(x, occ))


def default_series(seed: int = 7) -> tuple[Series, Series]:
    """The embedded training log (five days from Monday 09:00) and an independent test log
    (another seed; two days from Tuesday 08:00), like the UCI files."""
    return (synthetic_series(7200, seed, start_minute=9 * 60),
            synthetic_series(2880, seed + 1000, start_minute=(24 + 8) * 60))


def default_sensor(seed: int = 7) -> SensorData:
    """The embedded classification set (the default of ``--tasks classify``)."""
    return sensor_data(*default_series(seed), EMBEDDED)


def load_occupancy(path) -> Series:
    """One file of the UCI Occupancy Detection data set.

    Format: a header naming the 7 columns ``"date","Temperature","Humidity","Light","CO2",
    "HumidityRatio","Occupancy"`` (any order), optionally after a name for a leading row-id column
    (``""`` or ``"no"``, as R's write.csv and pandas write it); then one row per line: a row id
    (the UCI files have one, unnamed in the header; a header that names it requires it) and one
    value per column. The row id is ignored. Features must be finite numbers, the label 0 or 1,
    the date an ISO date and time (``2015-02-04 17:51:00``) later than the row before. The series
    is split into gap-free segments where rows are more than GAP_STEPS sampling steps apart.
    """
    path = Path(path)
    text, sha256 = read_utf8(path, "an occupancy CSV file")
    lines = text.splitlines()
    # A file cut off (an interrupted download or copy) ends without a line break: errors on its
    # last line then say so, and _check_cut looks at that line's last value.
    open_line = 0 if text.endswith(("\n", "\r")) else len(lines)
    reader = csv.reader(lines)
    header: Optional[list[str]] = None
    n_fields = first = last = 0
    rows_x: list[list[float]] = []
    rows_y: list[int] = []
    times: list[float] = []
    widths: list[int] = []  # characters of each row's last field, for _check_cut
    try:
        for fields in reader:
            line = reader.line_num
            if not "".join(fields).strip() and (line != open_line or not lines[-1].strip()):
                continue  # a blank line; but a last line cut to a lone '"' also reads as blank fields
            try:
                if header is None:
                    header, named_id = _header(path, line, [f.strip() for f in fields])
                    continue
                if not n_fields:  # the first data row settles whether rows carry a row id
                    n_fields, first = _fields_per_row(path, line, len(fields), named_id), line
                    skip = n_fields - len(header)
                    col = {name: header.index(name) + skip for name in OCCUPANCY_HEADER}
                if len(fields) != n_fields:
                    raise UsageError(f"{path}: line {line}: {len(fields)} fields, expected {n_fields} "
                                     f"like line {first}")
                rows_x.append([_number(path, line, name, fields[col[name]]) for name in FEATURES])
                rows_y.append(_label(path, line, fields[col[LABEL]]))
                date = fields[col["date"]].strip()
                t = _time(path, line, date)
                if times and t <= times[-1]:
                    raise UsageError(f"{path}: line {line}: date {date!r} is not after the previous row's "
                                     f"{prev_date!r}; rows must be in increasing time order")
                times.append(t)
                prev_date, last = date, line
                widths.append(len(fields[-1].strip()))
            except UsageError as e:
                if line == open_line:
                    raise UsageError(f"{e}; the file ends without a line break there: truncated?") from None
                raise
    except csv.Error as e:
        raise UsageError(f"{path}: line {reader.line_num}: malformed CSV: {e}") from None
    if header is None:
        raise UsageError(f"{path} has no header line")
    if not rows_y:
        raise UsageError(f"{path} has a header but no data rows")
    if last == open_line:
        _check_cut(path, last, header[-1], widths)
    t = np.asarray(times)
    gap = np.diff(t) > GAP_STEPS * np.median(np.diff(t)) if t.size > 1 else np.zeros(0, dtype=bool)
    new = np.r_[True, gap]
    start = np.maximum.accumulate(np.where(new, np.arange(t.size), 0))
    return Series(str(path), np.asarray(rows_x, dtype=np.float64), np.asarray(rows_y, dtype=np.int32),
                  start, sha256)


def _header(path: Path, line: int, names: list[str]) -> tuple[list[str], bool]:
    """The 7 column names in file order, and whether the header also names a leading row-id
    column (an 8th name in front that is none of the 7: ``""``, ``"no"``, an index name)."""
    named_id = len(names) == len(OCCUPANCY_HEADER) + 1 and names[0] not in OCCUPANCY_HEADER
    if named_id:
        names = names[1:]
    _check_header(path, line, names)
    return names, named_id


def _fields_per_row(path: Path, line: int, n: int, named_id: bool) -> int:
    n_cols = len(OCCUPANCY_HEADER)
    if n == n_cols + 1 or (n == n_cols and not named_id):
        return n
    alternatives = (f"{n_cols + 1} (the row id named in the header and the {n_cols} columns)" if named_id else
                    f"{n_cols + 1} (a row id and the {n_cols} columns) or {n_cols} (the columns alone)")
    raise UsageError(f"{path}: line {line}: {n} fields, expected {alternatives}")


def _check_cut(path: Path, line: int, name: str, widths: list[int]) -> None:
    """Was the last line, which has no line break, cut inside its last value?

    A cut anywhere else in that line leaves it with fewer fields, which the loader reports; a cut
    inside the last value leaves a shorter number (or date) that may still parse, e.g. CO2 '72'
    for '721.25'. The text alone cannot prove a value complete, so the rule is: a last value with
    fewer characters than the median width of its column on the rows before (one program writes
    one column with a steady width: the UCI dates have 19, HumidityRatio 15-19 characters) is
    taken as cut. It never fires on the UCI files (their last column, the 0/1 label, is always 1
    character wide and an empty one is not a number), and a file ending in a genuinely short value
    is accepted once it ends with a line break, the one reliable sign that the writer finished,
    which the message asks for. A cut that leaves at least the usual width goes unnoticed.
    """
    if len(widths) < 2:
        return
    usual = int(np.median(widths[:-1]))
    if widths[-1] < usual:
        raise UsageError(f"{path}: line {line}: the file ends without a line break, and its last value ({name}) "
                         f"has {widths[-1]} characters where that column usually has {usual}: truncated? "
                         "If the line is complete, end the file with a line break")


def _check_header(path: Path, line: int, header: list[str]) -> None:
    expected = ",".join(OCCUPANCY_HEADER)
    missing = [n for n in OCCUPANCY_HEADER if n not in header]
    if missing:
        raise UsageError(f"{path}: line {line}: header lacks column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)}; expected the 7 names {expected}")
    dup = sorted({n for n in header if header.count(n) > 1})
    if dup:
        raise UsageError(f"{path}: line {line}: header repeats {', '.join(dup)}")
    if len(header) != len(OCCUPANCY_HEADER):
        extra = [n for n in header if n not in OCCUPANCY_HEADER]
        raise UsageError(f"{path}: line {line}: header has {len(header)} names (extra: {', '.join(extra)}); "
                         f"expected the 7 names {expected}, optionally after a row-id column name")


def _number(path: Path, line: int, name: str, text: str) -> float:
    s = text.strip()
    try:
        v = float(s)
    except ValueError:
        raise UsageError(f"{path}: line {line}: {name} is {s!r}, not a number") from None
    if not math.isfinite(v):
        raise UsageError(f"{path}: line {line}: {name} is {s!r}, not a finite number")
    return v


def _label(path: Path, line: int, text: str) -> int:
    v = _number(path, line, LABEL, text)
    if v not in (0.0, 1.0):
        raise UsageError(f"{path}: line {line}: {LABEL} is {text.strip()!r}, expected 0 or 1")
    return int(v)


_EPOCH = datetime(1970, 1, 1)


def _time(path: Path, line: int, text: str) -> float:
    """Seconds since 1970 of an ISO date and time (a time-zone offset is converted to UTC)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{path}: line {line}: date is {text!r}, not a date and time like "
                         "2015-02-04 17:51:00") from None
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return (t - _EPOCH).total_seconds()


def occupancy_data(train_path, test_path) -> SensorData:
    """``--occupancy-train`` and ``--occupancy-test``, normalized with the training statistics."""
    train = load_occupancy(train_path)
    test = load_occupancy(test_path)
    return sensor_data(train, test, f"{train_path} + {test_path}")


# ============================================================================================
# Metrics


def binary_scores(y_true, y_pred) -> dict:
    """Accuracy and F1 of the positive class (0 when there are no positive predictions or labels)."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    acc = float(np.mean(t == p)) if t.size else float("nan")
    denom = 2 * tp + fp + fn
    return {"accuracy": acc, "f1": (2 * tp / denom) if denom else 0.0}
