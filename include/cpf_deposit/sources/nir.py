"""The NIR (French social security number): read in the extraction, reduced to facts, dropped.

Why here, and only here: the NIR is the strongest check of a holder's civil status we
have (INSEE built it from the birth registration), but it is a regulated identifier.
It is read from the source only to verify the identity before deposit: the extraction
derives from it the facts below, which the identity gate compares with the declared
civil status, and drops it. The NIR itself is never written (no Parquet, CSV, workbook,
report, log line, error message or ledger column), never sent to the CDC, and no
function here puts it in an exception or a ``repr`` (docs/quality.md, "The NIR
cross-check").

Structure (INSEE; 13 characters, then a 2-digit key):

* position 1, sex: ``1`` man, ``2`` woman; ``3``/``4`` (foreigners being registered) and
  ``7``/``8`` (temporary numbers, NIA): not checkable, nothing is derived;
* 2-3, the last two digits of the birth year (the century is resolved with the
  declared birth year, else the award date: :func:`resolve_century`);
* 4-5, the birth month ``01``-``12``; ``20``, ``30``-``42`` and ``50``-``99`` stand for
  a month the birth certificate does not give (unknown);
* 6-10, the birthplace as an INSEE code: département (2 characters, ``2A``/``2B`` for
  Corsica since 1976 and ``20`` before) and commune (3 digits); overseas ``97x``/``98x``:
  3-character département and 2-digit commune; born abroad: ``99`` and the 3-digit INSEE
  country code;
* 11-13, the order number of the birth in the commune and month (never derived);
* key: ``97 - (number mod 97)``, the number read with ``2A`` as ``19`` and ``2B`` as
  ``18``.

Two paths, one set of rules: :func:`parse_nir` (one value, the reference and the API of
the tests) and :func:`nir_fact_arrays` (a fetched batch, vectorised with pyarrow); both
give the same facts (tests/quality/test_nir.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ABSENT, MALFORMED, INVALID_KEY, TEMPORARY, VALID = (
    "absent",
    "malformed",
    "invalid_key",
    "temporary",
    "valid",
)
STATUSES = (ABSENT, MALFORMED, INVALID_KEY, TEMPORARY, VALID)
# The facts, in the order of the canonical NIR columns (cpf_deposit.sources.canonical).
FACTS = ("status", "sex", "birth_year", "birth_month", "birth_department", "birth_commune")

_SHAPE = r"^[1-478][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{6}$"
_SHAPE_RE = re.compile(_SHAPE)
_KEY = r"^[0-9]{2}$"
_KEY_RE = re.compile(_KEY)
_NOISE = r"[ \t\r\n.\-]"  # spaces, dots and dashes typed between the groups
_NOISE_RE = re.compile(_NOISE)
_TEMPORARY_SEX = frozenset("3478")
ASSUMED_AGE = 20  # age at award assumed when no birth year is declared (century only)


@dataclass(frozen=True, slots=True)
class NirFacts:
    """What the identity gate may know of a NIR: never the number itself."""

    status: str
    sex: str | None = None  # M or F
    birth_year: int | None = None
    birth_month: str | None = None  # 01-12; None when the NIR carries an unknown month
    birth_department: str | None = None  # 44, 2A, 20 (Corsica before 1976), 974, 99
    birth_commune: str | None = None  # INSEE commune code, or 99xxx country code


def key_of(body: str) -> int:
    """The control key of a 13-character NIR body (Corsica read as 19/18)."""
    return 97 - int(body.replace("2A", "19").replace("2B", "18")) % 97


def month_kind(month: int) -> str:
    """``known`` (1-12), ``unknown`` (20, 30-42, 50-99: no month on the certificate) or
    ``bad``."""
    if 1 <= month <= 12:
        return "known"
    if month == 20 or 30 <= month <= 42 or month >= 50:
        return "unknown"
    return "bad"


def department_of_place(place: str) -> str:
    """Département of a 5-character NIR birthplace: 3 characters overseas (97x, 98x)."""
    return place[:3] if place[:2] in ("97", "98") else place[:2]


def resolve_century(
    yy: int,
    declared_year: int | None,
    award_year: int | None,
    today: dt.date | None = None,
) -> int:
    """The 4-digit birth year of a NIR's 2-digit year.

    The candidate (19yy or 20yy) closest to the declared birth year, else to the award
    year minus :data:`ASSUMED_AGE`; never after the award year (or this year when the
    award date is unknown). A tie goes to the later candidate.
    """
    cap = award_year if award_year is not None else (today or dt.date.today()).year
    reference = declared_year if declared_year is not None else cap - ASSUMED_AGE
    early, late = 1900 + yy, 2000 + yy
    if late > cap:
        return early
    return late if abs(late - reference) <= abs(early - reference) else early


def clean(number: object, key: object) -> tuple[str | None, str | None]:
    """(13-character body, key) as the source holds them, spaces and dots removed and
    upper-cased; a 15-character number without a separate key is split."""
    body = _clean_text(number)
    k = _clean_text(key)
    if body is not None and k is None and len(body) == 15:
        body, k = body[:13], body[13:]
    if k is not None and len(k) == 1:
        k = "0" + k  # a numeric column drops the leading zero of keys 01-09
    return body, k


def _clean_text(value: object) -> str | None:
    if value is None:
        return None
    text = _NOISE_RE.sub("", _driver_text(value)).upper()
    return text or None


def parse_nir(
    number: object,
    key: object,
    *,
    declared_year: int | None = None,
    award_year: int | None = None,
    today: dt.date | None = None,
) -> NirFacts:
    """The facts of one NIR (body and key as the source holds them).

    Facts are derived only from a valid NIR: a malformed one, a wrong key or a
    temporary number give the status alone.
    """
    body, k = clean(number, key)
    if body is None:
        return NirFacts(ABSENT)
    if not _SHAPE_RE.fullmatch(body) or k is None or not _KEY_RE.fullmatch(k):
        return NirFacts(MALFORMED)
    if month_kind(int(body[3:5])) == "bad":
        return NirFacts(MALFORMED)
    if key_of(body) != int(k):
        return NirFacts(INVALID_KEY)
    if body[0] in _TEMPORARY_SEX:
        return NirFacts(TEMPORARY)
    month = int(body[3:5])
    place = body[5:10]
    return NirFacts(
        VALID,
        sex="M" if body[0] == "1" else "F",
        birth_year=resolve_century(int(body[1:3]), declared_year, award_year, today),
        birth_month=f"{month:02d}" if month_kind(month) == "known" else None,
        birth_department=department_of_place(place),
        birth_commune=place,
    )


class NirError(ValueError):
    """The facts of a batch could not be derived (the message never holds a value)."""


def nir_fact_arrays(
    numbers: Any,
    keys: Any,
    birth_dates: Any,
    award_dates: Any,
    *,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """The facts of a batch, one Arrow array per fact (:data:`FACTS`), vectorised.

    ``numbers`` and ``keys`` are the batch's NIR columns (Arrow arrays or sequences of
    what the driver returns: text, or numbers from a numeric column), or None when the
    source has no NIR; ``birth_dates`` and ``award_dates`` are date32 arrays of the same
    batch. Same facts as :func:`parse_nir` row by row. Any failure is reported without
    the values (:class:`NirError`).
    """
    n = len(birth_dates)
    if numbers is None:
        return _all_absent(n)
    try:
        return _fact_arrays(numbers, keys, birth_dates, award_dates, n, today)
    except Exception:
        # pyarrow puts the offending value in its messages: never let one out.
        raise NirError("NIR facts could not be derived for a batch") from None


def _all_absent(n: int) -> dict[str, Any]:
    import pyarrow as pa

    return {
        "status": pa.array([ABSENT] * n, type=pa.string()),
        "sex": pa.nulls(n, pa.string()),
        "birth_year": pa.nulls(n, pa.int64()),
        "birth_month": pa.nulls(n, pa.string()),
        "birth_department": pa.nulls(n, pa.string()),
        "birth_commune": pa.nulls(n, pa.string()),
    }


def _text_array(values: Any, n: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    if values is None:
        return pa.nulls(n, pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(
            [None if v is None else _driver_text(v) for v in values], type=pa.string()
        )
    elif not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    if not pc.all(pc.utf8_is_alnum(values)).as_py():  # the regex only when needed
        values = pc.replace_substring_regex(values, _NOISE, "")
    cleaned = pc.utf8_upper(values)
    return pc.if_else(pc.equal(cleaned, ""), pa.scalar(None, pa.string()), cleaned)


def _driver_text(value: object) -> str:
    """A driver value as text: a float from a NUMBER column without its ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fact_arrays(numbers, keys, birth_dates, award_dates, n: int, today: dt.date | None):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    body = _text_array(numbers, n)
    key = _text_array(keys, n)
    if len(body) != n or len(key) != n or len(award_dates) != n:
        raise ValueError("the NIR columns and the dates differ in length")
    split = pc.and_(pc.is_null(key), pc.equal(pc.utf8_length(body), 15))
    split = pc.fill_null(split, False)
    key = pc.if_else(split, pc.utf8_slice_codeunits(body, 13, 15), key)
    body = pc.if_else(split, pc.utf8_slice_codeunits(body, 0, 13), body)
    key = pc.if_else(
        pc.fill_null(pc.equal(pc.utf8_length(key), 1), False),
        pc.binary_join_element_wise("0", key, ""),
        key,
    )

    present = pc.is_valid(body).to_numpy(zero_copy_only=False)
    shaped = pc.fill_null(pc.match_substring_regex(body, _SHAPE), False)
    key_shaped = pc.and_(pc.equal(pc.utf8_length(key), 2), pc.ascii_is_decimal(key))  # _KEY
    shaped = pc.and_(shaped, pc.fill_null(key_shaped, False))
    shaped_np = shaped.to_numpy(zero_copy_only=False)

    # Shaped values only are read as digits, as a (rows x 13) byte matrix; the others
    # become "1000000000000" first, so nothing can fail on a value (and name it).
    safe = pc.if_else(shaped, body, pa.scalar("1000000000000", pa.string()))
    d = _bytes(safe, 13) - 48
    k = _bytes(pc.if_else(shaped, key, pa.scalar("00", pa.string())), 2) - 48
    letter = d[:, 6] > 9  # 2A read as 19, 2B as 18 (the shape allows letters there only)
    d[:, 5] = np.where(letter, 1, d[:, 5])
    d[:, 6] = np.where(letter, np.where(d[:, 6] == ord("A") - 48, 9, 8), d[:, 6])
    value = d @ (10 ** np.arange(12, -1, -1, dtype=np.int64))
    key_ok = (97 - value % 97) == k[:, 0] * 10 + k[:, 1]

    month = d[:, 3] * 10 + d[:, 4]
    known = (month >= 1) & (month <= 12)
    unknown = (month == 20) | ((month >= 30) & (month <= 42)) | (month >= 50)
    well_formed = shaped_np & (known | unknown)
    sex_digit = d[:, 0]
    temporary = np.isin(sex_digit, (3, 4, 7, 8))
    # index in STATUSES: absent, malformed, invalid_key, temporary, valid
    code = np.where(
        ~present, 0, np.where(~well_formed, 1, np.where(~key_ok, 2, np.where(temporary, 3, 4)))
    )
    valid = code == 4
    valid_arr = pa.array(valid)
    no_text = pa.scalar(None, pa.string())

    yy = d[:, 1] * 10 + d[:, 2]
    declared = _years(birth_dates)
    awarded = _years(award_dates)
    cap = np.where(awarded >= 0, awarded, (today or dt.date.today()).year)
    reference = np.where(declared >= 0, declared, cap - ASSUMED_AGE)
    early, late = 1900 + yy, 2000 + yy
    year = np.where(
        late > cap,
        early,
        np.where(np.abs(late - reference) <= np.abs(early - reference), late, early),
    )

    place = pc.utf8_slice_codeunits(safe, 5, 10)
    overseas = pa.array((d[:, 5] == 9) & ((d[:, 6] == 7) | (d[:, 6] == 8)))
    department = pc.if_else(
        overseas, pc.utf8_slice_codeunits(place, 0, 3), pc.utf8_slice_codeunits(place, 0, 2)
    )
    return {
        "status": pa.array(STATUSES, pa.string()).take(pa.array(code)),
        "sex": pa.array(["M", "F"], pa.string()).take(
            pa.array(np.where(sex_digit == 1, 0, 1), mask=~valid)
        ),
        "birth_year": pa.array(year, type=pa.int64(), mask=~valid),
        "birth_month": pc.if_else(
            pa.array(valid & known), pc.utf8_slice_codeunits(safe, 3, 5), no_text
        ),
        "birth_department": pc.if_else(valid_arr, department, no_text),
        "birth_commune": pc.if_else(valid_arr, place, no_text),
    }


def _bytes(values: Any, width: int):
    """ASCII strings all ``width`` long (and not null) as a (rows x width) int64 matrix."""
    import numpy as np
    import pyarrow as pa

    fixed = values.cast(pa.binary(width))
    raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
    start = fixed.offset * width
    return raw[start : start + len(fixed) * width].reshape(-1, width).astype(np.int64)


def _years(dates: Any):
    """Years of a date32 array as int64, -1 where missing."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(dates, pa.ChunkedArray):
        dates = dates.combine_chunks()
    if not isinstance(dates, pa.Array):
        dates = pa.array(list(dates), type=pa.date32())
    if pa.types.is_null(dates.type):
        return np.full(len(dates), -1, dtype=np.int64)
    return pc.fill_null(pc.year(dates), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def facts_frame(frame: Any, *, today: dt.date | None = None) -> Any:
    """A frame of source rows (pandas) with the NIR columns consumed: the facts added as
    the canonical NIR columns, ``nir_number`` and ``nir_key`` dropped.

    For the code paths that read a source query into pandas (the quality report); the
    extraction does the same batch by batch (:class:`~cpf_deposit.sources.canonical.
    CanonicalParquetWriter`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from cpf_deposit.sources.canonical import NIR_COLUMN_NAMES, NIR_SOURCE_COLUMNS

    def dates(name: str):
        if name not in frame:
            return pa.nulls(len(frame), pa.date32())
        text = frame[name].astype("string").str.slice(0, 10)
        text = pa.array(text.to_numpy(dtype=object, na_value=None), type=pa.string())
        parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
        return parsed.cast(pa.date32())

    number, key = (frame.get(c) for c in NIR_SOURCE_COLUMNS)
    facts = nir_fact_arrays(
        None if number is None else number.to_numpy(dtype=object, na_value=None).tolist(),
        None if key is None else key.to_numpy(dtype=object, na_value=None).tolist(),
        dates("birth_date"),
        dates("award_date"),
        today=today,
    )
    out = frame.drop(columns=[c for c in NIR_SOURCE_COLUMNS if c in frame])
    for name, fact in zip(NIR_COLUMN_NAMES, FACTS, strict=True):
        out[name] = facts[fact].to_pandas(types_mapper=_pandas_type)
    return out


def _pandas_type(type_):
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_string(type_):
        return pd.StringDtype()
    if pa.types.is_integer(type_):
        return pd.Int64Dtype()
    return None


def parse_many(
    numbers: Sequence[object],
    keys: Sequence[object],
    declared_years: Sequence[int | None],
    award_years: Sequence[int | None],
    today: dt.date | None = None,
) -> list[NirFacts]:
    """:func:`parse_nir` row by row (the reference of the vectorised path)."""
    return [
        parse_nir(n, k, declared_year=d, award_year=a, today=today)
        for n, k, d, a in zip(numbers, keys, declared_years, award_years, strict=True)
    ]
