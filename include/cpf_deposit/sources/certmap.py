"""Diploma version to RNCP/RS certification: a CSV file or a table of the source database.

Why a mapping: no source system exposes the France compétences code in a known column
(docs/sources.md), and national fiches are renumbered over time, so each entry may be
limited to a range of academic years. A diploma version without an entry is reported,
never dropped silently.

Line by line: one malformed line never refuses the whole mapping (which would hold back
every deposit). It is kept as a :class:`BadLine`; every award of its diploma version in
the years it covers (all years when its years cannot be read) is refused with a French
reason naming the line, reported by the extraction (``certification_map_line_invalid``)
and quarantined by the identity gate (rule R10D). The other lines apply.

* A code must carry its prefix (``RNCP34034``, ``RS5875``) and the prefix must be the
  line's type. A bare number is refused, never completed: the CDC rejects a code filed
  under the wrong repertoire, and only the institution knows which one it is.
* Two lines of one diploma version whose years overlap: the same certification is
  harmless (a duplicated line gives the same answer); different certifications make
  the common years ambiguous, so those years are refused (both lines named) and the
  other years of each line apply.
* Only a file that cannot be read as a mapping at all is refused as a whole
  (:class:`CertificationMapError`, a configuration error): missing file, not UTF-8, a
  header without ``diploma_code``, ``certification_type`` or ``certification_code``, or
  an unknown header column while a known one is absent (it may be misspelt: a lost
  ``first_year`` would extend a line to every year). An unknown column is otherwise
  ignored (a label column, say).
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cpf_deposit.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_TABLE = "cdc_vdi_certif_map"
TYPES = ("RNCP", "RS")

# Canonical header, then the Apogée names of docs/sources.md §4.1, both accepted.
ALIASES = {
    "diploma_code": ("diploma_code", "cod_dip"),
    "diploma_version": ("diploma_version", "cod_vrs_vdi"),
    "first_year": ("first_year", "daa_deb"),
    "last_year": ("last_year", "daa_fin"),
    "certification_type": ("certification_type", "certif_type"),
    "certification_code": ("certification_code", "certif_code"),
}
REQUIRED = ("diploma_code", "certification_type", "certification_code")
_KNOWN = frozenset(n for names in ALIASES.values() for n in names)
_YEAR = re.compile(r"[12][0-9]{3}")
_CODE = re.compile(r"(RNCP|RS)([0-9]{1,10})")
_SHOWN = re.compile(r"[0-9A-Za-z_.\-/ ]{1,24}")  # what a message may quote from the map


class CertificationMapError(ConfigError, ValueError):
    """The mapping cannot be read at all (missing file, encoding, header): terminal, the
    institution fixes its CSV or table. A malformed *line* is no error: see BadLine."""


@dataclass(frozen=True, slots=True)
class Entry:
    first_year: int | None
    last_year: int | None
    certification_type: str
    certification_code: str  # with its prefix: RNCP34034, RS5875
    line: int = 0  # line (CSV) or record (table) number in the mapping

    def covers(self, year: int | None) -> bool:
        if year is None:
            return self.first_year is None and self.last_year is None
        lo = self.first_year if self.first_year is not None else -1
        hi = self.last_year if self.last_year is not None else 9999
        return lo <= year <= hi


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line (or two overlapping lines) of the mapping that cannot be applied.

    ``reason`` is French, for the scolarité office, and names the mapping and the line
    number(s). The awards of (``diploma_code``, ``diploma_version``) in the years it
    covers are refused rather than mapped; ``diploma_code`` is None when the line has
    none (then no award can be attributed to it: it is only reported).
    """

    lines: tuple[int, ...]
    diploma_code: str | None
    diploma_version: str | None
    first_year: int | None
    last_year: int | None
    all_years: bool  # the line's years are unreadable: every year of the version
    reason: str

    def covers(self, year: int | None) -> bool:
        # An award without academic year cannot be placed outside the line's years: refused.
        if self.all_years or year is None:
            return True
        lo = self.first_year if self.first_year is not None else -1
        hi = self.last_year if self.last_year is not None else 9999
        return lo <= year <= hi


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    values: Mapping[str, object]
    shape: str | None = None  # French: the line has more or fewer values than the header


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _shown(value: object) -> str:
    """A value of the mapping as a message may quote it (codes, years), else a mention."""
    text = _text(value)
    if text is not None and _SHOWN.fullmatch(text):
        return text
    return "(valeur non affichable)"


def _year(value: object) -> int | None:
    """The year of a cell; None when empty. Raises ValueError when unreadable."""
    text = _text(value)
    if text is None:
        return None
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not _YEAR.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _version(value: object) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _text(value)


def _years_fr(lo: int | None, hi: int | None) -> str:
    if lo is None and hi is None:
        return "toutes les années"
    if lo is None:
        return f"les années jusqu'à {hi}-{hi + 1}"  # type: ignore[operator]
    if hi is None:
        return f"les années à partir de {lo}-{lo + 1}"
    if lo == hi:
        return f"l'année {lo}-{lo + 1}"
    return f"les années {lo}-{lo + 1} à {hi}-{hi + 1}"


class CertificationMap:
    """Lookup of (diploma code, version, academic year) to (type, prefixed code).

    ``rows`` are mappings of column name to value (either set of names of ``ALIASES``),
    numbered from 2 (line 1 is the header). :meth:`lookup` never returns an entry for a
    refused (diploma version, year); :meth:`refusal` says why it is refused.
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, object] | _Line],
        origin: str = "mapping",
        unit: str = "ligne",
    ):
        self.origin = origin
        self.unit = unit
        self._entries: dict[tuple[str, str | None], list[Entry]] = {}
        self._refused: dict[tuple[str, str | None], list[BadLine]] = {}
        self.bad_lines: list[BadLine] = []  # every line refused, in line order
        for number, raw in enumerate(rows, start=2):
            line = raw if isinstance(raw, _Line) else _Line(number, raw)
            self._read(line)
        self._refuse_ambiguous_overlaps()
        if self.bad_lines:
            log.warning(
                "%s : %d ligne(s) de la table de correspondance refusée(s) ; les passages "
                "des diplômes concernés sont mis en quarantaine, les autres lignes s'appliquent",
                origin,
                len(self.bad_lines),
            )

    def _where(self, *numbers: int) -> str:
        if len(numbers) == 1:
            return f"{self.origin}, {self.unit} {numbers[0]}"
        listed = ", ".join(str(n) for n in numbers[:-1]) + f" et {numbers[-1]}"
        return f"{self.origin}, {self.unit}s {listed}"

    def _read(self, line: _Line) -> None:
        row = {str(k).lower().strip(): v for k, v in line.values.items() if k is not None}
        values = {
            name: next((row[n] for n in names if n in row), None) for name, names in ALIASES.items()
        }
        code = _text(values["diploma_code"])
        version = _version(values["diploma_version"])
        problems: list[str] = []
        if line.shape is not None:
            problems.append(line.shape)
        if code is None:
            problems.append("code diplôme absent")

        years_known = True
        years: list[int | None] = []
        for name, label in (("first_year", "année de début"), ("last_year", "année de fin")):
            try:
                years.append(_year(values[name]))
            except ValueError:
                years.append(None)
                years_known = False
                problems.append(
                    f"{label} « {_shown(values[name])} » illisible (attendu une année comme 2021)"
                )
        first, last = years
        if first is not None and last is not None and first > last:
            years_known = False
            problems.append(f"année de début {first} après l'année de fin {last}")

        ctype = _text(values["certification_type"])
        if ctype is None:
            problems.append("type de certification absent (RNCP ou RS)")
        else:
            ctype = ctype.upper()
            if ctype not in TYPES:
                problems.append(f"type « {_shown(ctype)} » inconnu (attendu RNCP ou RS)")
        raw_code = _text(values["certification_code"])
        certification = None
        if raw_code is None:
            problems.append("code de certification absent")
        else:
            match = _CODE.fullmatch(raw_code.upper())
            if match is None:
                if raw_code.isdigit():
                    problems.append(
                        f"code « {_shown(raw_code)} » sans préfixe : écrire le code complet de "
                        "la fiche France compétences (RNCP… ou RS…), il n'est jamais complété"
                    )
                else:
                    problems.append(
                        f"code « {_shown(raw_code)} » mal formé (attendu RNCP ou RS suivi de "
                        "chiffres, sans espace)"
                    )
            elif ctype in TYPES and match.group(1) != ctype:
                problems.append(
                    f"type {ctype} mais code {match.group(0)} : le type et le préfixe du code "
                    "doivent désigner le même répertoire"
                )
            else:
                certification = match.group(0)

        if problems:
            bad = BadLine(
                (line.number,),
                code,
                version,
                first if years_known else None,
                last if years_known else None,
                not years_known,
                f"{self._where(line.number)} : " + " ; ".join(problems),
            )
            self.bad_lines.append(bad)
            if code is not None:
                self._refused.setdefault((code, version), []).append(bad)
            return
        entry = Entry(first, last, ctype, certification, line.number)  # type: ignore[arg-type]
        self._entries.setdefault((code, version), []).append(entry)  # type: ignore[arg-type]

    def _refuse_ambiguous_overlaps(self) -> None:
        """Years two lines of one diploma version give different certifications: refused."""
        for key, entries in self._entries.items():
            for i, a in enumerate(entries):
                for b in entries[i + 1 :]:
                    if a.certification_code == b.certification_code or not _overlap(a, b):
                        continue
                    lo = _max_lo(a.first_year, b.first_year)
                    hi = _min_hi(a.last_year, b.last_year)
                    bad = BadLine(
                        (a.line, b.line),
                        key[0],
                        key[1],
                        lo,
                        hi,
                        False,
                        f"{self._where(a.line, b.line)} : deux certifications différentes "
                        f"({a.certification_code} et {b.certification_code}) pour "
                        f"{_years_fr(lo, hi)} ; n'en garder qu'une par année",
                    )
                    self.bad_lines.append(bad)
                    self._refused.setdefault(key, []).append(bad)
        self.bad_lines.sort(key=lambda b: b.lines)

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def refusal(self, code: str | None, version: str | None, year: int | None) -> BadLine | None:
        """The bad line that refuses this diploma version and year, if any."""
        for bad in self._refused.get((code, version), ()):  # type: ignore[arg-type]
            if bad.covers(year):
                return bad
        return None

    def lookup(self, code: str | None, version: str | None, year: int | None) -> Entry | None:
        """The entry of this diploma version and year; None when unmapped or refused."""
        if self._refused and self.refusal(code, version, year) is not None:
            return None
        for entry in self._entries.get((code, version), ()):  # type: ignore[arg-type]
            if entry.covers(year):
                return entry
        return None

    @classmethod
    def from_csv(cls, path: str | Path) -> CertificationMap:
        path = Path(path)
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header is None:
                    return cls([], origin=path.name)
                names = [h.lower().strip() for h in header]
                _check_header(names, path.name)
                lines = []
                for cells in reader:
                    if not any(c.strip() for c in cells):  # blank line, or only separators
                        continue
                    shape = None
                    if len(cells) > len(names):
                        shape = (
                            f"{len(cells)} valeurs pour {len(names)} colonnes d'en-tête "
                            "(séparateur en trop dans une valeur ?)"
                        )
                    elif len(cells) < len(names):
                        shape = f"{len(cells)} valeurs pour {len(names)} colonnes d'en-tête"
                    values = dict(zip(names, cells, strict=False))
                    lines.append(_Line(reader.line_num, values, shape))
        except FileNotFoundError:
            raise CertificationMapError(
                f"{path}: the certification mapping does not exist"
            ) from None
        except UnicodeDecodeError:
            raise CertificationMapError(
                f"{path}: the certification mapping is not UTF-8 text (save it as CSV UTF-8)"
            ) from None
        except csv.Error as exc:
            raise CertificationMapError(f"{path}: not a readable CSV file ({exc})") from None
        return cls(lines, origin=path.name)

    @classmethod
    def from_cursor(cls, cursor, table: str = DEFAULT_TABLE) -> CertificationMap:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.$]*", table):
            raise CertificationMapError(f"{table!r} is not a table name")
        cursor.execute(
            "SELECT cod_dip, cod_vrs_vdi, daa_deb, daa_fin, certif_type, certif_code "
            f"FROM {table} ORDER BY cod_dip, cod_vrs_vdi, daa_deb, daa_fin"
        )
        names = [d[0].lower() for d in cursor.description]
        rows = [
            _Line(number, dict(zip(names, r, strict=True)))
            for number, r in enumerate(cursor.fetchall(), start=1)
        ]
        return cls(rows, origin=f"table {table}", unit="enregistrement")


def _check_header(names: list[str], origin: str) -> None:
    """Refuse a header the lines cannot be read by (see the module docstring)."""
    present = {name for name, aliases in ALIASES.items() if any(a in names for a in aliases)}
    missing = [n for n in REQUIRED if n not in present]
    if missing:
        raise CertificationMapError(
            f"{origin}: the header lacks the column(s) {', '.join(missing)} (expected "
            + ",".join(ALIASES)
            + ")"
        )
    unknown = [n for n in names if n and n not in _KNOWN]  # "" : a trailing separator
    absent = [n for n in ALIASES if n not in present]
    if unknown and absent:
        raise CertificationMapError(
            f"{origin}: unknown column(s) {', '.join(unknown)} while {', '.join(absent)} "
            "is absent (misspelt?): name every column as documented"
        )


def _overlap(a: Entry, b: Entry) -> bool:
    lo_a, hi_a = _lo(a.first_year), _hi(a.last_year)
    lo_b, hi_b = _lo(b.first_year), _hi(b.last_year)
    return lo_a <= hi_b and lo_b <= hi_a


def _lo(year: int | None) -> int:
    return -1 if year is None else year


def _hi(year: int | None) -> int:
    return 9999 if year is None else year


def _max_lo(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else max(_lo(a), _lo(b))


def _min_hi(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else min(_hi(a), _hi(b))
