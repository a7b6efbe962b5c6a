"""Hypothesis strategies for canonical passages, derived from the model's field table.

``passages(valid_only=False)`` also produces values the XSD cannot hold (too long,
forbidden characters, wrong shapes), so tests can check both the written and the
refused paths.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import strategies as st

from cpf_deposit.model import FIELDS, Block, Kind, Passage

# Any character but surrogates; XML-forbidden ones included on purpose.
_ANY_CHAR = st.characters(exclude_categories=("Cs",))
_OK_CHAR = st.characters(
    exclude_categories=("Cs", "Cc"),
    include_characters="\t\n\r",
    exclude_characters="\ufffe\uffff",
)


def _value(f):
    if f.type == "text":
        return st.text(_OK_CHAR, min_size=f.min_len, max_size=f.max_len or 80)
    if f.type == "enum":
        return st.sampled_from(sorted(f.choices))
    if f.type == "date":
        return st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31))
    if f.type == "int":
        return st.integers(f.low, f.high)
    if f.type == "bool":
        return st.booleans()
    if f.type == "digcomp":
        one = st.tuples(
            st.none() | st.integers(1, 8),
            st.none() | st.sampled_from("12345"),
            st.none() | st.sampled_from("123456"),
        )
        return st.lists(one, max_size=4).map(tuple)
    raise AssertionError(f.type)


def _bad_value(f):
    """A value of the right Python type that the XSD cannot hold (or a wrong type)."""
    if f.type == "text":
        hi = f.max_len or 80
        return st.one_of(
            st.just(""),
            st.text(_OK_CHAR, min_size=hi + 1, max_size=hi + 3),
            st.text(_ANY_CHAR, min_size=1, max_size=8).filter(
                lambda s: any(c < " " or c in "\ufffe\uffff" for c in s)
            ),
        )
    if f.type == "enum":
        return st.sampled_from(["", "m", "ADMISSION", "TIERS_DE_CONFIANCE", "FRANCE_TRAVAIL"])
    if f.type == "date":
        return st.dates(dt.date(1, 1, 1), dt.date(1899, 12, 31)) | st.dates(dt.date(2100, 1, 1))
    if f.type == "int":
        return st.integers(f.low - 1000, f.low - 1) | st.integers(f.high + 1, f.high + 1000)
    if f.type == "bool":
        return st.sampled_from(["true", 1, None])
    if f.type == "digcomp":
        return st.sampled_from([((0, "1", "1"),), ((9, None, None),), ((1, "12", None),)])
    raise AssertionError(f.type)


@st.composite
def passages(draw, valid_only: bool = True) -> Passage:
    """A valid passage; unless ``valid_only``, one time in two with one field made invalid."""
    p = draw(_valid_passages())
    if valid_only or draw(st.booleans()):
        return p
    f = draw(st.sampled_from([f for f in FIELDS if f.kind is not Kind.INTERNAL]))
    return dataclasses.replace(p, **{f.name: draw(_bad_value(f))})


@st.composite
def _valid_passages(draw) -> Passage:
    by_file = draw(st.booleans().map(lambda b: b and draw(st.integers(0, 4)) == 0))
    kwargs = {}
    for f in FIELDS:
        if f.kind is Kind.INTERNAL:
            continue
        in_other_branch = (f.block is Block.TITULAIRE and by_file) or (
            f.block is Block.DOSSIER and not by_file
        )
        if in_other_branch:
            continue
        if f.name == "birth_postal_code" and kwargs.get("birth_insee_code") is not None:
            continue
        required = f.kind is Kind.REQUIRED
        strategy = _value(f)
        kwargs[f.name] = draw(strategy if required else st.none() | strategy)
    if not kwargs.get("digcomp_results"):
        kwargs["digcomp_results"] = ()
    for start, end in (("award_date", "valid_until"), ("exam_start", "exam_end")):
        a, b = kwargs.get(start), kwargs.get(end)
        if a is not None and b is not None and b < a:  # the CDC refuses reversed dates
            kwargs[start], kwargs[end] = b, a
    return Passage(**kwargs)
