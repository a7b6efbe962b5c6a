"""Name normalisation: the one place that decides when two spellings are "the same".

Why here and once: the identity gate, the CDC simulator and the worklists must agree
on what the CDC compares. The CDC guide V3 (10/03/2023) documents that accents are
ignored and punctuation is not ("Jean-François" differs from "Jean François"); the
announced change makes punctuation of the birth name non-discriminant. Hence two keys:

* :func:`cdc_key`: today's comparison: upper case, accents stripped, ligatures spelled
  out (Æ, Œ, ß, Ø, Ł, Đ, Ĳ: plain NFKD leaves them), apostrophe and hyphen variants
  unified to ``'`` and ``-``, spaces trimmed and collapsed; every punctuation mark and
  the ``--`` of 2005-2009 double names are kept;
* :func:`loose_key`: the announced comparison: :func:`cdc_key` without any punctuation
  or space (letters and digits only).

Assumptions (not documented by the CDC): case is ignored, leading/trailing spaces and
runs of spaces do not count, ligatures compare equal to their two letters (the SNGI
stores unaccented upper case).

Vectorised forms (:func:`cdc_keys`, :func:`loose_keys`) compute each distinct value
once: a million names hold a few hundred thousand distinct spellings.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pandas as pd

__all__ = [
    "cdc_key",
    "cdc_keys",
    "first_name_key",
    "fold_text",
    "foreign_characters",
    "loose_key",
    "loose_keys",
    "map_unique",
]

_TRANSLATE = str.maketrans(
    {
        "Æ": "AE",
        "æ": "ae",
        "Œ": "OE",
        "œ": "oe",
        "ß": "SS",
        "ẞ": "SS",
        "Ø": "O",
        "ø": "o",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "Ð": "D",
        "ð": "d",
        "Ĳ": "IJ",
        "ĳ": "ij",
        "Þ": "TH",
        "þ": "th",
        "ı": "i",
        # apostrophe variants
        "’": "'",
        "‘": "'",
        "`": "'",
        "´": "'",
        "ʼ": "'",
        "ʻ": "'",
        "′": "'",
        # hyphen and dash variants
        "‐": "-",
        "‑": "-",
        "‒": "-",
        "–": "-",
        "—": "-",
        "―": "-",
        "−": "-",
        # exotic spaces
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
        "\t": " ",
    }
)
_SPACES = re.compile(r" {2,}")
_NOT_ALNUM = re.compile(r"[\W_]+")
# What a civil-status name may hold once folded: Latin letters, space, hyphen, apostrophe.
_FOREIGN = re.compile(r"[^A-Z '\-]")


@lru_cache(maxsize=100_000)
def fold_text(s: str) -> str:
    """Upper case, accents stripped, ligatures and punctuation variants unified.

    Spaces are not trimmed nor collapsed here (see :func:`cdc_key`)."""
    if s.isascii() and "`" not in s and "\t" not in s:
        return s.upper()
    text = unicodedata.normalize("NFKD", s.translate(_TRANSLATE))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.upper().translate(_TRANSLATE)


def cdc_key(s: str | None) -> str | None:
    """The key the CDC compares today: accents ignored, punctuation significant."""
    if s is None:
        return None
    return _SPACES.sub(" ", fold_text(s).strip())


def loose_key(s: str | None) -> str | None:
    """The key of the announced change: punctuation and spaces ignored too (letters
    and digits of any script are kept)."""
    if s is None:
        return None
    return _NOT_ALNUM.sub("", fold_text(s))


def first_name_key(s: str | None) -> str | None:
    """Lookup key of a first name in the INSEE lists: :func:`cdc_key`, space as hyphen.

    INSEE spells compounds with a hyphen; a spaced "JEAN PIERRE" finds "JEAN-PIERRE"."""
    k = cdc_key(s)
    return None if k is None else k.replace(" - ", "-").replace(" ", "-")


def foreign_characters(s: str | None) -> str:
    """Characters a civil-status name cannot hold once folded: digits, symbols,
    non-Latin scripts (empty when the name is clean)."""
    if s is None:
        return ""
    return "".join(sorted(set(_FOREIGN.findall(fold_text(s)))))


def map_unique(values: pd.Series, fn, dtype: str = "str") -> pd.Series:
    """``fn`` applied once per distinct non-null value of ``values``, broadcast back."""
    import numpy as np

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = [fn(u) for u in np.asarray(uniques, dtype=object).tolist()]

    if dtype == "str":
        table = pd.array([*mapped, None], dtype="str")
    else:
        table = np.array([*mapped, None], dtype=object)
    out = table[np.where(codes < 0, len(mapped), codes)]
    return pd.Series(out, index=values.index, dtype=dtype if dtype == "str" else object)


def cdc_keys(values: pd.Series) -> pd.Series:
    """:func:`cdc_key` of a whole column (nulls stay null)."""
    return map_unique(values, cdc_key)


def loose_keys(values: pd.Series) -> pd.Series:
    """:func:`loose_key` of a whole column (nulls stay null)."""
    return map_unique(values, loose_key)
