"""Realistic data errors injected into the Apogée copy, with their ground truth.

Why: the identity checks and the CDC simulator are scored against what was really
wrong. Rates are per holder record and independent, from identity-matching.md §3.4
(total about 7.75 % of CDC rejections). Every change is recorded as (record key =
COD_IND, error type, Apogée column, original value); an error that needs a feature
the person lacks (a hyphen, a second first name) is drawn among those who have it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

RATES = {
    "absent_from_register": 0.024,
    "birth_name_punctuation": 0.009,
    "first_names_merged": 0.008,
    "typo": 0.007,
    "usage_name_as_birth_name": 0.006,
    "name_inverted": 0.005,
    "transliteration": 0.005,
    "sex_wrong": 0.005,
    "compound_first_name_unhyphenated": 0.005,
    "birth_year_wrong": 0.003,
    "birth_day_month_wrong": 0.020,
    "birth_day_month_nil": 0.020,
    "birth_commune_wrong": 0.030,
    "birth_commune_nil": 0.050,
    "first_names_2_3_wrong": 0.010,
    "first_names_2_3_missing": 0.400,
}
_TRANSLIT = (("MED", "MMED"), ("OU", "U"), ("Y", "I"), ("IE", "I"), ("K", "C"), ("EL", "ELL"))
_LETTERS = "ABCDEFGHIJKLMNOPRSTUVZ"


class Injector:
    """Applies the error types to INDIVIDU columns (numpy object arrays), in place."""

    def __init__(self, rng: np.random.Generator, ind: dict[str, np.ndarray], spouses: np.ndarray):
        self.rng = rng
        self.ind = ind
        self.spouses = spouses
        self.n = len(ind["cod_ind"])
        self.truth: list[tuple[str, str, str, str | None]] = []
        self.absent = np.zeros(self.n, dtype=bool)

    def _pick(self, rate: float, eligible: np.ndarray | None = None, prefer=None) -> np.ndarray:
        """Indices for ``rate`` of all records, drawn among the eligible ones."""
        k = round(rate * self.n)
        pool = np.arange(self.n) if eligible is None else np.flatnonzero(eligible)
        k = min(k, len(pool))
        if not k:
            return pool[:0]
        p = None
        if prefer is not None:
            w = np.where(prefer[pool], 5.0, 1.0)
            p = w / w.sum()
        return np.sort(self.rng.choice(pool, size=k, replace=False, p=p))

    def _set(self, i: int, column: str, value, error: str) -> None:
        original = self.ind[column][i]
        self.truth.append((str(self.ind["cod_ind"][i]), error, column.upper(), original))
        self.ind[column][i] = value

    def _typo(self, text: str) -> str:
        r = self.rng
        pos = int(r.integers(len(text)))
        kind = int(r.integers(3))
        if kind == 0 and len(text) > 3:
            return text[:pos] + text[pos + 1 :]
        if kind == 1 and pos < len(text) - 1:
            return text[:pos] + text[pos + 1] + text[pos] + text[pos + 2 :]
        letter = _LETTERS[int(r.integers(len(_LETTERS)))]
        if letter == text[pos]:
            letter = "E" if letter != "E" else "A"
        return text[:pos] + letter + text[pos + 1 :]

    def run(self) -> None:
        ind = self.ind
        civil = ind["tem_pr_usage"] != "O"
        foreign = ind["cod_typ_dep_pay_nai"] == "P"
        french = ind["cod_typ_dep_pay_nai"] == "D"
        pr1, pr2, pr3 = ind["lib_pr1_ind"], ind["lib_pr2_ind"], ind["lib_pr3_ind"]
        nom = ind["lib_nom_pat_ind"]

        for i in self._pick(RATES["absent_from_register"], prefer=foreign):
            self.absent[i] = True
            self.truth.append((str(ind["cod_ind"][i]), "absent_from_register", "-", None))
            self._set(i, "cod_nni_etu", None, "absent_from_register")
            self._set(i, "cod_cle_nni_etu", None, "absent_from_register")

        punct = np.array([any(c in n for c in "-' ŒÆ") for n in nom])
        for i in self._pick(RATES["birth_name_punctuation"], punct):
            n = nom[i]
            for a, b in (("--", "-"), ("-", " "), ("'", ""), (" ", "-"), ("Œ", "OE"), ("Æ", "AE")):
                if a in n:
                    self._set(i, "lib_nom_pat_ind", n.replace(a, b, 1), "birth_name_punctuation")
                    break

        has2 = np.array([v is not None for v in pr2]) & civil
        for i in self._pick(RATES["first_names_merged"], has2):
            err = "first_names_merged"
            self._set(i, "lib_pr1_ind", f"{pr1[i]} {pr2[i]}", err)
            self._set(i, "lib_pr2_ind", pr3[i], err)
            if pr3[i] is not None:
                self._set(i, "lib_pr3_ind", None, err)

        for i in self._pick(RATES["typo"], civil):
            column = "lib_nom_pat_ind" if self.rng.random() < 0.5 else "lib_pr1_ind"
            self._set(i, column, self._typo(ind[column][i]), "typo")

        women = ind["cod_sex_etu"] == "F"
        for i in self._pick(RATES["usage_name_as_birth_name"], women):
            usage = ind["lib_nom_usu_ind"][i] or self.spouses[i]
            self._set(i, "lib_nom_pat_ind", usage, "usage_name_as_birth_name")
            if ind["lib_nom_usu_ind"][i] != usage:
                self._set(i, "lib_nom_usu_ind", usage, "usage_name_as_birth_name")

        for i in self._pick(RATES["name_inverted"], civil):
            first, last = pr1[i], nom[i]
            self._set(i, "lib_nom_pat_ind", first, "name_inverted")
            self._set(i, "lib_pr1_ind", last, "name_inverted")

        for i in self._pick(RATES["transliteration"], civil, prefer=foreign):
            column = "lib_pr1_ind" if self.rng.random() < 0.5 else "lib_nom_pat_ind"
            text = ind[column][i]
            for a, b in _TRANSLIT:
                if a in text:
                    new = text.replace(a, b, 1)
                    break
            else:
                new = text + text[-1]
            self._set(i, column, new, "transliteration")

        for i in self._pick(RATES["sex_wrong"]):
            column = "cod_sex_etu" if civil[i] else "cod_sex_eta_civ"
            self._set(i, column, "M" if ind[column][i] == "F" else "F", "sex_wrong")

        hyphen = np.array([v is not None and "-" in v for v in pr1]) & civil
        for i in self._pick(RATES["compound_first_name_unhyphenated"], hyphen):
            self._set(
                i, "lib_pr1_ind", pr1[i].replace("-", " "), "compound_first_name_unhyphenated"
            )

        for i in self._pick(RATES["birth_year_wrong"]):
            d = dt.date.fromisoformat(ind["date_nai_ind"][i])
            year = d.year + (1 if self.rng.random() < 0.5 else -1)
            new = d.replace(year=year, day=min(d.day, 28) if d.month == 2 else d.day)
            self._set(i, "date_nai_ind", new.isoformat(), "birth_year_wrong")

        for i in self._pick(RATES["birth_day_month_wrong"]):
            d = dt.date.fromisoformat(ind["date_nai_ind"][i])
            if d.day <= 12 and d.day != d.month:
                new = d.replace(month=d.day, day=d.month)
            elif self.rng.random() < 0.5:
                new = d.replace(month=1, day=1) if (d.month, d.day) != (1, 1) else d.replace(day=2)
            else:
                new = d.replace(day=d.day - 1 if d.day > 1 else 2)
            self._set(i, "date_nai_ind", new.isoformat(), "birth_day_month_wrong")

        for i in self._pick(RATES["birth_day_month_nil"]):
            d = dt.date.fromisoformat(ind["date_nai_ind"][i])
            self._set(i, "tem_date_nai_rel", "N", "birth_day_month_nil")
            self._set(
                i, "date_nai_ind", d.replace(month=1, day=1).isoformat(), "birth_day_month_nil"
            )

        for i in self._pick(RATES["birth_commune_wrong"], french):
            code = ind["cod_com_nai_etu"][i]
            postal = ind["_postal"][i]
            if code is not None and postal and postal != code:
                self._set(i, "cod_com_nai_etu", postal, "birth_commune_wrong")
            else:
                other = ind["_neighbour_label"][i]
                if code is not None:
                    self._set(i, "cod_com_nai_etu", None, "birth_commune_wrong")
                self._set(i, "lib_vil_nai_etu", other, "birth_commune_wrong")

        for i in self._pick(RATES["birth_commune_nil"], french):
            if ind["cod_com_nai_etu"][i] is not None:
                self._set(i, "cod_com_nai_etu", None, "birth_commune_nil")
            self._set(i, "lib_vil_nai_etu", None, "birth_commune_nil")

        for i in self._pick(RATES["first_names_2_3_wrong"], has2):
            if pr3[i] is not None and self.rng.random() < 0.5:
                a, b = pr2[i], pr3[i]
                self._set(i, "lib_pr2_ind", b, "first_names_2_3_wrong")
                self._set(i, "lib_pr3_ind", a, "first_names_2_3_wrong")
            elif pr2[i] is not None:
                self._set(i, "lib_pr2_ind", self._typo(pr2[i]), "first_names_2_3_wrong")

        for i in self._pick(RATES["first_names_2_3_missing"], has2):
            if pr2[i] is not None:
                self._set(i, "lib_pr2_ind", None, "first_names_2_3_missing")
            if pr3[i] is not None:
                self._set(i, "lib_pr3_ind", None, "first_names_2_3_missing")
