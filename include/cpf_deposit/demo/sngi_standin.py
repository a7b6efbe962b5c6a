"""A stand-in for the CDC's identification of holders against the SNGI ("nirisation").

Why a second one: the project's own simulator was written by the gate's authors; this
one is written only from the CDC guide to reading the *accusé de traitement* (V3,
10/03/2023) as summarised in ``identity-matching.md`` §1.1-1.3 and §3.2-3.3, and from
the webinar of 16 March 2023. It judges each sent passage against a register built
from the true civil status (:mod:`cpf_deposit.demo.independent`), never against what
the source holds.

The funnel (guide V3, DOCUMENTED):

1. birth name, first name (``prenom1`` against the first civil-status first name),
   sex, birth year: 0 candidates -> "Aucun titulaire ne correspond aux critères
   obligatoires"; 1 -> accepted;
2. several: add month and day (skipped when nil): 0 -> "... enrichis du jour et du mois
   de naissance";
3. still several: the birth commune (skipped when nil), then first names 2 and 3 when
   sent (hypothesis A of §1.2: tie-break only; B: checked whenever sent) -> "... critères
   de reconciliation" / "... critères des prénoms 2 et 3"; still several -> "Plusieurs
   titulaires ont été identifiés".

Normalisation: case and accents ignored (DOCUMENTED), punctuation kept, Œ/Æ not folded
(the webinar announces both becoming non-discriminant for the birth name: ``loose``).
Runs of spaces count as one and ends are trimmed (INFERRED, §1.3 strict key).

The register holds every true identity except the holders without NIR, a second copy of
the identities duplicated in the SNGI, and homonyms sharing (nom, prénom, sexe, année):
Poisson with a rate proportional to p(nom) x p(prénom), scaled so that 7.2 % of the
holders have at least one (§3.2, MEASURED there), with random day, month, commune and
first names 2/3.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

import numpy as np

ACCEPTED = "accepted"
REJECTED = "rejected"
MSG_STAGE1 = "Aucun titulaire ne correspond aux critères obligatoires"
MSG_STAGE2 = (
    "Aucun titulaire ne correspond aux critères obligatoires enrichis du jour et du mois "
    "de naissance"
)
MSG_STAGE3 = "Aucun titulaire ne correspond aux critères de reconciliation"
MSG_PRENOMS = "Aucun titulaire ne correspond aux critères des prénoms 2 et 3"
MSG_SEVERAL = "Plusieurs titulaires ont été identifiés"
MSG_UNSENDABLE = "non transmissible : donnée obligatoire absente (nom, prénom, sexe, année)"

_SPACES = re.compile(r"\s+")
_NOT_LETTER = re.compile(r"[^A-Z]")
_EXPAND = str.maketrans({"Æ": "AE", "Œ": "OE", "ß": "SS", "Ø": "O", "Ł": "L", "Đ": "D"})


def strict_key(value: object) -> str | None:
    """Today's CDC comparison: upper case, accents dropped, punctuation and Œ/Æ kept."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = unicodedata.normalize("NFKD", str(value).upper())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _SPACES.sub(" ", text).strip()
    return text or None


def loose_key(value: object) -> str | None:
    """The announced birth-name comparison: letters only, Œ/Æ spelled out."""
    key = strict_key(value)
    if key is None:
        return None
    return _NOT_LETTER.sub("", key.translate(_EXPAND)) or None


@dataclass(frozen=True)
class Policy:
    """Switches for what the sources leave open (identity-matching.md §1.5)."""

    birth_name: str = "strict"  # "loose": punctuation and Œ/Æ ignored (announced)
    prenoms_2_3: str = "A"  # "A": tie-break at stage 3 only; "B": checked whenever sent
    homonym_share: float = 0.072  # holders with at least one stage-1 homonym (§3.2)

    def describe(self) -> str:
        return (
            f"birth name {self.birth_name}, prénoms 2/3 hypothesis {self.prenoms_2_3}, "
            f"homonyms {100 * self.homonym_share:.1f} %"
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One SNGI identity (keys already normalised)."""

    person_id: int | None  # None for a homonym drawn here
    nom: str
    nom_loose: str | None
    prenom1: str
    sexe: str
    annee: int
    mois: int | None
    jour: int | None
    commune: str | None
    prenom2: str | None
    prenom3: str | None


def homonym_rates(weights: np.ndarray, share: float) -> np.ndarray:
    """Poisson rate per holder, proportional to ``weights``, such that ``share`` of the
    holders get at least one homonym."""
    weights = np.asarray(weights, dtype=float)
    if not len(weights) or share <= 0 or not weights.any():
        return np.zeros(len(weights))
    lo, hi = 0.0, 1.0
    while np.mean(1 - np.exp(-hi * weights)) < share and hi < 1e30:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.mean(1 - np.exp(-mid * weights)) < share else (lo, mid)
    return hi * weights


class SngiStandIn:
    """The register and the funnel. ``truth``: the frame of
    :func:`cpf_deposit.demo.independent.read_truth` (one row per source record)."""

    def __init__(self, truth, seed: int, policy: Policy | None = None):
        self.policy = policy or Policy()
        rng = np.random.default_rng([seed, 2])
        persons = truth[truth["role"] == "original"].drop_duplicates("person_id")
        persons = persons.sort_values("person_id")
        self.person_of_record = dict(
            zip(truth["cod_ind"].astype(str), truth["person_id"].astype(int), strict=True)
        )
        entries: list[Entry] = []
        for p in persons.itertuples(index=False):
            if not p.in_register:
                continue
            date = str(p.true_birth_date)
            e = self._entry(
                int(p.person_id), p.true_birth_name, p.true_first_name_1, p.true_sex,
                int(date[:4]), int(date[5:7]), int(date[8:10]), p.true_birth_code,
                p.true_first_name_2, p.true_first_name_3,
            )  # fmt: skip
            entries.append(e)
            if p.sngi_duplicate:  # a second identity, same civil status
                entries.append(replace(e))
        # Homonyms: same stage-1 key, other day/month, commune and first names 2/3.
        weights = (persons["surname_p"] * persons["first_name_p"]).to_numpy(dtype=float)
        k = rng.poisson(homonym_rates(weights, self.policy.homonym_share))
        src = np.repeat(np.arange(len(persons)), k)
        other = rng.integers(0, max(1, len(persons)), len(src))
        months = rng.integers(1, 13, len(src))
        days = rng.integers(1, 29, len(src))
        rows = persons.to_dict("records")
        for j, s in enumerate(src.tolist()):
            p, o = rows[s], rows[int(other[j])]
            entries.append(
                self._entry(
                    None, p["true_birth_name"], p["true_first_name_1"], p["true_sex"],
                    int(str(p["true_birth_date"])[:4]), int(months[j]), int(days[j]),
                    o["true_birth_code"], o["true_first_name_2"], o["true_first_name_3"],
                )
            )  # fmt: skip
        self.entries = entries
        self.homonyms = len(src)
        self._strict: dict[tuple, list[Entry]] = {}
        self._loose: dict[tuple, list[Entry]] = {}
        for e in entries:
            self._strict.setdefault((e.nom, e.prenom1, e.sexe, e.annee), []).append(e)
            self._loose.setdefault((e.nom_loose, e.prenom1, e.sexe, e.annee), []).append(e)

    @staticmethod
    def _entry(pid, nom, prenom1, sexe, annee, mois, jour, commune, prenom2, prenom3) -> Entry:
        return Entry(
            pid, strict_key(nom), loose_key(nom), strict_key(prenom1), sexe, annee, mois, jour,
            commune, strict_key(prenom2), strict_key(prenom3),
        )  # fmt: skip

    def candidates(self, nom, prenom1, sexe, annee) -> list[Entry]:
        """Stage 1 of the funnel."""
        if self.policy.birth_name == "loose":
            return self._loose.get((loose_key(nom), strict_key(prenom1), sexe, annee), [])
        return self._strict.get((strict_key(nom), strict_key(prenom1), sexe, annee), [])

    def match(
        self,
        nom: object,
        prenom1: object,
        sexe: object,
        annee: object,
        mois: object = None,
        jour: object = None,
        commune: object = None,
        prenom2: object = None,
        prenom3: object = None,
    ) -> tuple[str, int, str | None, int | None]:
        """(outcome, stage, CDC message or None, matched person id) of one sent holder."""
        annee, mois, jour = _int(annee), _int(mois), _int(jour)
        sexe = None if sexe is None or (isinstance(sexe, float) and np.isnan(sexe)) else sexe
        if strict_key(nom) is None or strict_key(prenom1) is None or sexe is None or annee is None:
            return REJECTED, 0, MSG_UNSENDABLE, None
        found = self.candidates(nom, prenom1, sexe, annee)
        p2, p3 = strict_key(prenom2), strict_key(prenom3)
        if not found:
            return REJECTED, 1, MSG_STAGE1, None
        if len(found) > 1 and mois is not None and jour is not None:
            found = [e for e in found if e.mois == mois and e.jour == jour]
            if not found:
                return REJECTED, 2, MSG_STAGE2, None
        if len(found) > 1:
            code = strict_key(commune)
            if code is not None:
                found = [e for e in found if e.commune == code]
                if not found:
                    return REJECTED, 3, MSG_STAGE3, None
        if (len(found) > 1 or self.policy.prenoms_2_3 == "B") and (p2 or p3):
            found = [e for e in found if _first_names_fit(e, p2, p3)]
            if not found:
                return REJECTED, 3, MSG_PRENOMS, None
        if len(found) > 1:
            return REJECTED, 3, MSG_SEVERAL, None
        return ACCEPTED, 0, None, found[0].person_id

    def judge(self, sent) -> object:
        """Outcome of every sent passage (a frame with the passage columns of
        :class:`cpf_deposit.model.Passage` and ``source_person_id``).

        Returns ``source_record_key``, ``outcome``, ``stage``, ``message``,
        ``matched_person`` and ``misattributed`` (accepted, but for somebody else).
        """
        import pandas as pd

        out = []
        cols = (
            "birth_name", "first_name_1", "sex", "birth_year", "birth_month", "birth_day",
            "birth_insee_code", "first_name_2", "first_name_3",
        )  # fmt: skip
        for row in sent[["source_record_key", "source_person_id", *cols]].itertuples(index=False):
            values = [_none(v) for v in row[2:]]
            outcome, stage, message, matched = self.match(*values)
            own = self.person_of_record.get(str(row.source_person_id))
            out.append(
                (
                    row.source_record_key,
                    outcome,
                    stage,
                    message,
                    matched,
                    outcome == ACCEPTED and matched != own,
                )
            )
        return pd.DataFrame(
            out,
            columns=[
                "source_record_key",
                "outcome",
                "stage",
                "message",
                "matched_person",
                "misattributed",
            ],
        )


def _first_names_fit(e: Entry, p2: str | None, p3: str | None) -> bool:
    return (p2 is None or p2 == e.prenom2) and (p3 is None or p3 == e.prenom3)


def _none(value: object) -> object:
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _int(value: object) -> int | None:
    value = _none(value)
    return None if value is None else int(value)  # type: ignore[call-overload]
