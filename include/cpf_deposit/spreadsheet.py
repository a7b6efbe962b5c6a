"""Values that are safe to put in a spreadsheet the office opens (CSV or XLSX).

Two dangers, whatever the source holds. A cell that starts with ``=``, ``+``, ``-``,
``@`` (or a tab or carriage return) is read as a formula by Excel and LibreOffice
when they open a CSV: it is prefixed with an apostrophe, the convention both show as
text. And a few characters cannot be stored at all: XLSX (XML) refuses control
characters and lone surrogates (openpyxl raises), and a cell holds at most 32,767
characters. Those are shown, never dropped silently: each character as ``⟨U+0001⟩``,
an over-long value cut with a note of its real length. The source value itself is
never changed: these are display forms, and the record is quarantined by the gate.
"""

from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_CHARS = 32_767

# What XML 1.0 (hence XLSX) cannot hold: C0 controls but TAB/LF/CR, lone surrogates,
# U+FFFE and U+FFFF.
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _shown(match: re.Match) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


def visible(value: str) -> str:
    """``value`` with every unstorable character written as ``⟨U+XXXX⟩``."""
    return _UNSTORABLE.sub(_shown, value)


def csv_cell(value: object) -> object:
    """A CSV cell that no spreadsheet reads as a formula and that UTF-8 can encode
    (unstorable characters shown); other values as they are."""
    if not isinstance(value, str):
        return value
    if _UNSTORABLE.search(value):
        value = visible(value)
    if value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_column(values):
    """:func:`csv_cell` over a pandas Series of text, touching only the rows that need it."""
    text = values.astype("object")
    strings = text.map(lambda v: isinstance(v, str))
    risky = strings & (
        text.where(strings, "").str.contains(_UNSTORABLE.pattern, regex=True)
        | text.where(strings, "").str.startswith(FORMULA_START)
    )
    if risky.any():
        text = text.copy()
        text[risky] = text[risky].map(csv_cell)
    return text


def needs_care(value: object) -> bool:
    """Whether :func:`xlsx_text` would change anything (the fast path skips the rest)."""
    return isinstance(value, str) and (
        value.startswith("=") or len(value) > XLSX_MAX_CHARS or bool(_UNSTORABLE.search(value))
    )


def xlsx_text(value: str) -> str:
    """Text an XLSX cell can store: unstorable characters shown, cut at the cell limit
    with the value's real length said. Formula safety is the cell's type (string), set
    by the writer, so no apostrophe is added here."""
    text = visible(value)
    if len(text) > XLSX_MAX_CHARS:
        note = f"… [affichage limité : {len(value)} caractères]"
        text = text[: XLSX_MAX_CHARS - len(note)] + note
    return text
