"""A small built-in set of demo passages covering every branch of the flux.

Fictitious people. Used by ``cpf-deposit demo`` before any database exists, and by
tests as known-good input: INSEE and Corsican birthplaces, a foreign birth (99xxx),
an unknown birthplace (postal code nil), a CPF file reference (block 9), a language
level, DigComp results, nil honours and an unknown access route.
"""

from __future__ import annotations

import datetime as dt

from cpf_deposit.model import Passage

_LICENCE = ("RNCP", "RNCP24514")
_MASTER = ("RNCP", "RNCP34034")
_CLES = ("RS", "RS5875")


def sample_passages() -> list[Passage]:
    d = dt.date
    return [
        Passage(
            *_LICENCE,
            technical_id="DEMO-0001",
            award_date=d(2023, 7, 4),
            exam_start=d(2023, 6, 27),
            mention="MENTION_BIEN",
            access_mode="FORMATION_INITIALE_HORS_APPRENTISSAGE",
            birth_name="MARTIN",
            first_name_1="Jean-François",
            first_name_2="Louis",
            birth_year=2001,
            birth_month=3,
            birth_day=14,
            sex="M",
            birth_insee_code="72181",
            birth_city_label="Le Mans",
            source_system="DEMO",
            source_record_key="1001-LIC-1-2022",
        ),
        Passage(
            *_LICENCE,
            technical_id="DEMO-0002",
            award_date=d(2023, 7, 4),
            mention="SANS_MENTION",
            access_mode="FORMATION_INITIALE_APPRENTISSAGE",
            birth_name="N'DIAYE",
            usage_name="LEFÈVRE",
            first_name_1="Aïssatou",
            birth_year=1999,
            birth_month=11,
            birth_day=30,
            sex="F",
            birth_insee_code="99341",
            birth_city_label="Dakar",
            birth_country_label="Sénégal",
            source_system="DEMO",
            source_record_key="1002-LIC-1-2022",
        ),
        Passage(
            *_MASTER,
            technical_id="DEMO-0003",
            award_date=d(2024, 9, 12),
            scoring="14.25/20",
            option_label="Management & innovation <parcours A>",
            mention="MENTION_TRES_BIEN",
            language_level="B2",
            access_mode="VAE",
            vae_route="VAE_CLASSIQUE",
            birth_name="ŒUVRARD-D'ALMEIDA",
            first_name_1="Zoé",
            birth_year=1988,
            birth_month=None,
            birth_day=None,
            sex="F",
            birth_insee_code="2A004",
            birth_city_label="Ajaccio",
            source_system="DEMO",
            source_record_key="1003-MAS-1-2023",
        ),
        Passage(
            *_MASTER,
            technical_id="DEMO-0004",
            award_date=d(2024, 9, 12),
            valid_until=d(2029, 9, 12),
            birth_name="LE GOFF",
            first_name_1="Maël",
            birth_year=2000,
            birth_month=1,
            birth_day=5,
            sex="M",
            source_system="DEMO",
            source_record_key="1004-MAS-1-2023",
        ),
        Passage(
            *_CLES,
            technical_id="DEMO-0005",
            award_date=d(2025, 1, 20),
            obtention="PAR_SCORING",
            scoring="512",
            digcomp_score=512,
            digcomp_results=((4, "1", "1"), (3, "2", "4"), (5, "5", "3")),
            exam_mode="EN_PRESENTIEL",
            exam_postal_code="72000",
            cpf_file_id="1234567890123",
            cpf_holder_name="DUBOIS",
            cpf_holder_first_name="Léa",
            source_system="DEMO",
            source_record_key="1005-CLES-2025",
        ),
    ]
