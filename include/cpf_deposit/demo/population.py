"""The true identities of the synthetic graduates (civil status, birthplace).

Why vectorised: a million people must be drawn in seconds (numpy arrays, one column
each). Shares follow identity-matching.md §3.1 (assumptions marked there): 55 % women,
births 1991-2005 with 8 % continuing-education adults born 1960-1990, 12 % born
abroad, married names, usage first names, compound and particle names, Œ/Æ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpf_deposit.demo.names import draw_first_names, draw_surnames, surnames
from cpf_deposit.sources.reference import communes, countries

# Large cities get weights proportional to births (rough population / 1000); every
# other commune weighs the same. Paris, Lyon and Marseille births are by arrondissement.
_CITY_WEIGHTS = {
    **{str(75100 + i): 100.0 for i in range(1, 21)},
    **{str(13200 + i): 50.0 for i in range(1, 17)},
    **{str(69380 + i): 55.0 for i in range(1, 10)},
    "31555": 490.0, "06088": 340.0, "44109": 320.0, "34172": 290.0, "67482": 290.0,
    "33063": 260.0, "59350": 235.0, "35238": 220.0, "51454": 180.0, "76351": 170.0,
    "42218": 170.0, "83137": 170.0, "38185": 158.0, "21231": 156.0, "49007": 155.0,
    "30189": 148.0, "72181": 145.0, "29019": 140.0, "37261": 136.0, "80021": 133.0,
    "87085": 130.0, "63113": 147.0, "57463": 120.0, "25056": 117.0, "66136": 120.0,
    "45234": 116.0, "76540": 112.0, "14118": 106.0, "54395": 104.0, "2A004": 70.0,
    "2B033": 47.0, "97411": 150.0, "97209": 76.0, "97120": 16.0, "97302": 63.0,
    "97611": 71.0, "97416": 80.0,
}  # fmt: skip
_COUNTRY_WEIGHTS = {
    "99350": 25, "99352": 20, "99351": 10, "99341": 6, "99216": 6, "99127": 4,
    "99139": 4, "99326": 4, "99322": 4, "99134": 3, "99109": 3, "99131": 2,
    "99205": 2, "99243": 2, "99208": 2,
}  # fmt: skip
FOREIGN_CITIES = {
    "99350": ("CASABLANCA", "RABAT", "FES", "MARRAKECH", "TANGER", "OUJDA"),
    "99352": ("ALGER", "ORAN", "CONSTANTINE", "ANNABA", "TIZI OUZOU", "SETIF"),
    "99351": ("TUNIS", "SFAX", "SOUSSE", "BIZERTE"),
    "99341": ("DAKAR", "SAINT-LOUIS", "THIES"),
    "99216": ("PEKIN", "SHANGHAI", "WUHAN", "CANTON"),
    "99127": ("ROME", "MILAN", "NAPLES", "TURIN"),
    "99139": ("LISBONNE", "PORTO", "BRAGA"),
    "99326": ("ABIDJAN", "BOUAKE"),
    "99322": ("YAOUNDE", "DOUALA"),
    "99134": ("MADRID", "BARCELONE", "SEVILLE"),
    "99109": ("BERLIN", "MUNICH", "FRANCFORT"),
    "99131": ("BRUXELLES", "LIEGE", "ANVERS"),
    "99205": ("BEYROUTH", "TRIPOLI"),
    "99243": ("HANOI", "HO CHI MINH VILLE"),
    "99208": ("ISTANBUL", "ANKARA", "IZMIR"),
}


_PARTICLES = ("DE ", "DU ", "D'", "DE LA ", "LE ", "LA ", "DES ", "VAN ", "EL ", "BEN ")


@dataclass
class Population:
    """One row per person, the truth as the civil status holds it (arrays of equal length)."""

    sex: np.ndarray  # 'M'/'F'
    birth_date: np.ndarray  # datetime64[D]
    birth_name: np.ndarray
    usage_name: np.ndarray  # None when none
    first_1: np.ndarray
    first_2: np.ndarray
    first_3: np.ndarray
    first_1_p: np.ndarray  # INSEE-based probability of first_1 (homonyms)
    surname_p: np.ndarray
    born_abroad: np.ndarray  # bool
    birth_code: np.ndarray  # INSEE commune code or 99xxx
    foreign_city: np.ndarray  # foreign city label or None

    def __len__(self) -> int:
        return len(self.sex)

    @property
    def years(self) -> np.ndarray:
        return self.birth_date.astype("datetime64[Y]").astype(int) + 1970


def _ligatures(names: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Write OE/AE as Œ/Æ in a share of the names holding them (LÆTITIA, CŒUR)."""
    out = names.copy()
    for i in np.flatnonzero(rng.random(len(names)) < share):
        n = out[i]
        if n is not None and ("OE" in n or "AE" in n):
            out[i] = n.replace("OE", "Œ", 1).replace("AE", "Æ", 1)
    return out


def _other_first_names(
    rng: np.random.Generator, sex: np.ndarray, years: np.ndarray, avoid: np.ndarray
) -> np.ndarray:
    names, _ = draw_first_names(rng, sex, years)
    same = names == avoid
    if same.any():
        again, _ = draw_first_names(rng, sex[same], years[same])
        names[same] = again
    return names


def draw_population(rng: np.random.Generator, n: int) -> Population:
    sex = np.where(rng.random(n) < 0.55, "F", "M").astype(object)
    adult = rng.random(n) < 0.08
    years = np.where(adult, rng.integers(1960, 1991, n), rng.integers(1991, 2006, n))
    start = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    # Days in each birth year (366 in a leap year): first day of the next year minus start.
    days = (start.astype("datetime64[Y]") + 1).astype("datetime64[D]") - start
    birth = start + (rng.random(n) * days.astype(int)).astype(int)

    first_1, first_1_p = draw_first_names(rng, sex, years)
    first_2 = _other_first_names(rng, sex, years, first_1)
    first_3 = _other_first_names(rng, sex, years, first_2)
    has_2 = rng.random(n) < 0.85
    has_3 = has_2 & (rng.random(n) < 0.40 / 0.85)
    first_2 = np.where(has_2, first_2, None)
    first_3 = np.where(has_3, first_3, None)
    first_1 = _ligatures(first_1, rng, 0.5)

    birth_name, surname_p = draw_surnames(rng, n)
    # Apostrophes and particles sit deep in the rank list; give them a visible share.
    names, probs = surnames()
    special = np.flatnonzero([("'" in x) or x.startswith(_PARTICLES) for x in names])
    boost = rng.random(n) < 0.01
    pick = special[rng.integers(0, len(special), int(boost.sum()))]
    birth_name[boost], surname_p[boost] = names[pick], probs[pick]
    double = (years >= 2005) & (rng.random(n) < 0.08)
    if double.any():
        second, _ = draw_surnames(rng, int(double.sum()))
        birth_name[double] = birth_name[double] + "--" + second
    birth_name = _ligatures(birth_name, rng, 0.5)

    married_share = np.where(years < 1987, 0.5, 0.03)
    married = (sex == "F") & (rng.random(n) < married_share)
    spouse, _ = draw_surnames(rng, n)
    usage_name = np.where(married, spouse, None)

    abroad = rng.random(n) < 0.12
    birth_code = np.empty(n, dtype=object)
    foreign_city = np.full(n, None, dtype=object)
    ref = communes()
    codes = np.array([c.code for c in ref], dtype=object)
    weights = np.array([4 * _CITY_WEIGHTS.get(c.code, 0.375) for c in ref])
    fr = ~abroad
    birth_code[fr] = codes[rng.choice(len(codes), size=int(fr.sum()), p=weights / weights.sum())]
    all_countries = sorted(countries())
    cw = np.array([_COUNTRY_WEIGHTS.get(c, 0.3) for c in all_countries], dtype=float)
    country = np.array(all_countries, dtype=object)[
        rng.choice(len(all_countries), size=int(abroad.sum()), p=cw / cw.sum())
    ]
    birth_code[abroad] = country
    picks = rng.random(len(country))
    foreign_city[abroad] = [
        FOREIGN_CITIES[c][int(u * len(FOREIGN_CITIES[c]))] if c in FOREIGN_CITIES else None
        for c, u in zip(country, picks, strict=True)
    ]
    return Population(
        sex=sex,
        birth_date=birth,
        birth_name=birth_name,
        usage_name=usage_name,
        first_1=first_1,
        first_2=first_2,
        first_3=first_3,
        first_1_p=first_1_p,
        surname_p=surname_p,
        born_abroad=abroad,
        birth_code=birth_code,
        foreign_city=foreign_city,
    )
