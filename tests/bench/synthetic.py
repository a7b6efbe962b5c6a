"""Synthetic passages for benchmarks: varied enough to exercise every writer branch.

Cheap to generate (a few pools cycled with a counter), so the figures measure the
pipeline, not the generator.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from cpf_deposit.model import Passage

_NAMES = ["MARTIN", "BERNARD", "N'DIAYE", "LE GOFF", "DUPONT-MOREAU", "ŒUVRARD", "DA SILVA"]
_FIRST = [("Jean-François", "M"), ("Léa", "F"), ("Aïssatou", "F"), ("Maël", "M"), ("Zoé", "F")]
_PLACES = [("72181", "Le Mans"), ("2A004", "Ajaccio"), ("97411", "Saint-Denis"), ("99109", None)]
_CERTS = [("RNCP", f"RNCP{24000 + i}") for i in range(12)] + [("RS", "RS5875")]
_MENTIONS = [None, "SANS_MENTION", "MENTION_ASSEZ_BIEN", "MENTION_BIEN", "MENTION_TRES_BIEN"]


def synthetic_passages(n: int) -> Iterator[Passage]:
    """``n`` passages sorted by certification, as extraction delivers them."""
    per_cert = -(-n // len(_CERTS))
    i = 0
    for ctype, code in _CERTS:
        for _ in range(min(per_cert, n - i)):
            first, sex = _FIRST[i % 5]
            insee, city = _PLACES[i % 4]
            yield Passage(
                ctype,
                code,
                technical_id=f"SYN-{i:012d}",
                award_date=dt.date(2022 + i % 4, 6 + i % 3, 1 + i % 28),
                exam_start=dt.date(2022 + i % 4, 6, 1 + i % 20),
                mention=_MENTIONS[i % 5],
                access_mode="FORMATION_INITIALE_HORS_APPRENTISSAGE" if i % 3 else None,
                birth_name=_NAMES[i % 7],
                usage_name="DURAND" if i % 11 == 0 else None,
                first_name_1=first,
                first_name_2="Marie" if i % 4 == 0 else None,
                birth_year=1980 + i % 25,
                birth_month=1 + i % 12,
                birth_day=1 + i % 28,
                sex=sex,
                birth_insee_code=insee,
                birth_city_label=city,
                birth_country_label="Allemagne" if insee.startswith("99") else None,
                source_system="SYN",
                source_record_key=str(i),
            )
            i += 1
