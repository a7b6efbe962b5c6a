"""Reconciliation: how many passages the CDC matched, where the rejections come from.

The rate is ``accepted / processed`` where *processed* counts the passages the CDC
answered one by one (accepted, accepted as "existe déjà en base", rejected);
passages of a file rejected on XSD errors never reached the identification and are
counted apart. It is given per file, source, certification, academic year of the
award and month of deposit, from the ledger's sending history (one row per passage
per file it went into), so a passage rejected then corrected and accepted counts in
both files.

Rejections are broken down by CDC reason and by the identity-gate rules that had
fired before the deposit (the run's ``<paths.quarantine>/<run>/verdicts.parquet``,
joined on the source record key): how well the gate predicted the CDC.

The worklist for the scolarité office lists each rejected passage (its latest
rejection) with the reason, the likely cause and the suggested fix (French), and
whether it has since been corrected and sent again. It holds source record keys, no
names; it is written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select

from cpf_deposit.ledger.engine import Ledger
from cpf_deposit.ledger.schema import (
    Status,
    ledger_file,
    ledger_passage,
    ledger_sending,
    passage_state,
)
from cpf_deposit.receipts.ingest import XSD_REASON, award_years, split_reason
from cpf_deposit.receipts.parser import Reason

log = logging.getLogger(__name__)

CDC_THRESHOLD = 0.90  # below it the CDC asks the certifier to act
NATIONAL_AVERAGE = 0.9225  # national reconciliation rate, webinar of March 2023
UNKNOWN_YEAR = "inconnue"
NO_RULE = "aucune règle"

REASON_LABEL = {
    Reason.ACCEPTED.value: "accepté",
    Reason.ALREADY_IN_BASE.value: "accepté (existe déjà en base)",
    Reason.NO_MATCH_STAGE_1.value: "Aucun titulaire : critères obligatoires (étape 1)",
    Reason.NO_MATCH_STAGE_2.value: "Aucun titulaire : jour et mois de naissance (étape 2)",
    Reason.NO_MATCH_STAGE_3.value: "Aucun titulaire : commune et autres données (étape 3)",
    Reason.NO_MATCH_FIRST_NAMES_2_3.value: "Aucun titulaire : prénoms 2 et 3",
    Reason.SEVERAL_HOLDERS.value: "Plusieurs titulaires identifiés",
    Reason.CERTIFICATION_KO.value: "Certification KO",
    Reason.DATES.value: "Dates incohérentes",
    Reason.UNKNOWN.value: "Message inconnu",
    XSD_REASON: "Fichier rejeté (erreurs XSD)",
}

# normalised reason -> (likely cause, suggested fix, gate rules that point at it)
ADVICE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    Reason.NO_MATCH_STAGE_1.value: (
        "Nom de naissance, premier prénom, sexe ou année de naissance différents de l'état civil.",
        "Vérifier sur une pièce d'état civil le nom de naissance (et non le nom d'usage), "
        "le premier prénom avec sa ponctuation (tirets), le sexe et l'année de naissance ; "
        "corriger dans le logiciel de scolarité.",
        (
            *("R01", "R01B", "R02A", "R02B", "R03A", "R03B", "R04A", "R04B", "R04C"),
            *("R04D", "R05A", "R05B", "R05C", "R05D", "R06", "R09A", "R09B"),
        ),
    ),
    Reason.NO_MATCH_STAGE_2.value: (
        "Jour ou mois de naissance erroné (ou erreur sur les critères obligatoires qui a "
        "tout de même trouvé des homonymes).",
        "Vérifier le jour et le mois de naissance, puis le nom de naissance, le prénom, le "
        "sexe et l'année.",
        ("R07A", "R07B", "R06", "R01B", "R05D"),
    ),
    Reason.NO_MATCH_STAGE_3.value: (
        "Commune de naissance ou autres données (prénoms 2 et 3, pays) différentes de "
        "l'état civil.",
        "Vérifier le code INSEE de la commune de naissance (et non le code postal), le pays "
        "pour une naissance à l'étranger et les prénoms 2 et 3 ; ne transmettre que des "
        "données sûres.",
        ("R08A", "R08B", "R08C", "R08D", "R08E", "R07C", "R03B"),
    ),
    Reason.NO_MATCH_FIRST_NAMES_2_3.value: (
        "Prénoms 2 et 3 différents de l'état civil (orthographe ou ordre).",
        "Vérifier l'orthographe et l'ordre des prénoms 2 et 3, ou ne pas les transmettre "
        "s'ils sont incertains.",
        ("R07C", "R03A", "R03B"),
    ),
    Reason.SEVERAL_HOLDERS.value: (
        "Données insuffisantes pour distinguer des homonymes.",
        "Compléter le lieu de naissance (code INSEE de la commune ou pays), les prénoms 2 "
        "et 3, le jour et le mois de naissance.",
        ("R08E", "R08A", "R07A", "R07B"),
    ),
    Reason.CERTIFICATION_KO.value: (
        "Code de certification inexistant, mal écrit ou incohérent avec son type (RS/RNCP).",
        "Corriger la table de correspondance diplôme → code RNCP/RS (par exemple RNCP34034 "
        "et non 34034) et vérifier que la fiche est active.",
        ("R10A", "R10B", "R10C", "R10D"),
    ),
    Reason.DATES.value: (
        "Dates incohérentes (fin de validité ou examen avant la date de début).",
        "Corriger les dates d'obtention, d'examen et de validité dans le logiciel de scolarité.",
        ("R09C", "R09D", "R09F"),
    ),
    Reason.UNKNOWN.value: (
        "Message de la Caisse des Dépôts non répertorié.",
        "Lire le message de la Caisse des Dépôts et le transmettre à l'équipe technique.",
        (),
    ),
}


def _safe(run_id: str) -> str:
    """The quarantine folder name of a run (as :mod:`cpf_deposit.pipeline` makes it)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in run_id)[:100]


# --------------------------------------------------------------------------------------
# The data: one row per decided sending
# --------------------------------------------------------------------------------------


def sendings(ledger: Ledger, config=None, tz: ZoneInfo | None = None) -> pd.DataFrame:
    """Every sending the CDC decided on, with its passage, file, award year and gate rules."""
    S, P, F = ledger_sending.c, ledger_passage.c, ledger_file.c
    now = passage_state()
    tz = tz or (config.tz if config is not None else ZoneInfo("Europe/Paris"))
    q = (
        select(
            S.id_flux,
            S.technical_id,
            S.status,
            S.reason,
            S.decided_at,
            F.file_name,
            F.deposited_at,
            F.run_id,
            P.source_system,
            P.source_record_key,
            P.certification_type,
            P.certification_code,
            now.c.status.label("current_status"),
            now.c.id_flux.label("current_flux"),
        )
        .select_from(
            ledger_sending.join(ledger_file, S.id_flux == F.id_flux)
            .join(ledger_passage, S.technical_id == P.technical_id)
            .join(now, now.c.technical_id == P.technical_id)
        )
        .where(S.status.in_((Status.ACCEPTED, Status.REJECTED, Status.FILE_REJECTED)))
    )
    with ledger.engine.connect() as conn:
        rows = conn.execute(q).all()
    cols = [
        "id_flux",
        "technical_id",
        "status",
        "reason",
        "decided_at",
        "file_name",
        "deposited_at",
        "run_id",
        "source_system",
        "source_record_key",
        "certification_type",
        "certification_code",
        "current_status",
        "current_flux",
    ]
    # object columns: None stays None (not NaN), datetimes stay aware datetimes
    df = pd.DataFrame(
        {c: pd.Series([r[i] for r in rows], dtype=object) for i, c in enumerate(cols)}
    )
    codes, messages = [], []
    for status, reason in zip(df["status"], df["reason"], strict=True):
        code, message = split_reason(reason)
        if status == Status.ACCEPTED:
            code = code or Reason.ACCEPTED.value
        elif status == Status.FILE_REJECTED:
            code = XSD_REASON
        elif code is None:  # rejected by hand or before this module: classify the text
            from cpf_deposit.receipts.parser import classify

            code = classify(message or "").value
        codes.append(code)
        messages.append(message)
    df["reason_code"] = codes
    df["message"] = messages
    deposited = [(d.astimezone(tz) if d is not None else None) for d in df["deposited_at"].tolist()]
    df["deposited_local"] = deposited
    df["deposit_month"] = [d.strftime("%Y-%m") if d is not None else "" for d in deposited]
    years = award_years(config) if config is not None else {}
    df["academic_year"] = [years.get(t, UNKNOWN_YEAR) for t in df["technical_id"]]
    df["certification"] = [
        code if code.startswith(kind) else f"{kind} {code}"
        for kind, code in zip(df["certification_type"], df["certification_code"], strict=True)
    ]
    rules, verdicts = _gate(config, df)
    df["gate_rules"] = rules
    df["gate_known"] = verdicts
    return df


def _gate(config, df: pd.DataFrame) -> tuple[list[str], list[bool]]:
    """Rule ids that fired on each row before deposit ("" none); False: verdicts gone."""
    if config is None or df.empty:
        return [""] * len(df), [False] * len(df)
    import pyarrow.parquet as pq

    rules = [""] * len(df)
    known = [False] * len(df)
    root = Path(config.paths.quarantine)
    positions: dict[str, list[int]] = {}
    for i, run_id in enumerate(df["run_id"]):
        positions.setdefault(run_id, []).append(i)
    keys = df["source_record_key"].tolist()
    for run_id, idx in positions.items():
        path = root / _safe(run_id) / "verdicts.parquet"
        if not path.is_file():
            continue
        table = pq.read_table(path, columns=["source_record_key", "rule_ids"])
        fired = dict(
            zip(
                table["source_record_key"].to_pylist(),
                table["rule_ids"].to_pylist(),
                strict=True,
            )
        )
        for i in idx:
            if keys[i] in fired:
                rules[i] = fired[keys[i]] or ""
                known[i] = True
    return rules, known


# --------------------------------------------------------------------------------------
# Rates and breakdowns
# --------------------------------------------------------------------------------------


@dataclass
class Reconciliation:
    accepted: int
    rejected: int
    file_rejected: int
    already_in_base: int
    by: dict[str, pd.DataFrame] = field(default_factory=dict)
    reasons: pd.DataFrame | None = None
    gate: pd.DataFrame | None = None
    gate_by_reason: pd.DataFrame | None = None

    @property
    def processed(self) -> int:
        return self.accepted + self.rejected

    @property
    def rate(self) -> float | None:
        return self.accepted / self.processed if self.processed else None


DIMENSIONS = {
    "file_name": "fichier",
    "source_system": "source",
    "certification": "certification",
    "academic_year": "année universitaire",
    "deposit_month": "mois de dépôt",
}


def rates(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """accepted, rejected, processed, file_rejected and rate per value of ``column``."""
    if df.empty:
        return pd.DataFrame(columns=[column, "accepted", "rejected", "processed", "rate"])
    g = pd.DataFrame(
        {
            column: df[column],
            "accepted": (df["status"] == Status.ACCEPTED).astype(int),
            "rejected": (df["status"] == Status.REJECTED).astype(int),
            "file_rejected": (df["status"] == Status.FILE_REJECTED).astype(int),
        }
    )
    out = g.groupby(column, sort=True).sum().reset_index()
    out["processed"] = out["accepted"] + out["rejected"]
    out["rate"] = out["accepted"] / out["processed"].where(out["processed"] > 0)
    return out


def reconcile(df: pd.DataFrame) -> Reconciliation:
    status = df["status"] if not df.empty else pd.Series(dtype=str)
    rec = Reconciliation(
        accepted=int((status == Status.ACCEPTED).sum()),
        rejected=int((status == Status.REJECTED).sum()),
        file_rejected=int((status == Status.FILE_REJECTED).sum()),
        already_in_base=int((df.get("reason_code") == Reason.ALREADY_IN_BASE.value).sum())
        if not df.empty
        else 0,
    )
    rec.by = {col: rates(df, col) for col in DIMENSIONS}
    rejected = df[df["status"] == Status.REJECTED] if not df.empty else df
    reasons = (
        rejected.groupby("reason_code").size().rename("rejected").reset_index()
        if not rejected.empty
        else pd.DataFrame(columns=["reason_code", "rejected"])
    )
    reasons["label"] = reasons["reason_code"].map(lambda c: REASON_LABEL.get(c, c))
    rec.reasons = reasons.sort_values("rejected", ascending=False, kind="stable")
    rec.gate, rec.gate_by_reason = _gate_tables(df)
    return rec


def _gate_tables(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per gate rule: passages answered, rejected, rejection rate; rejections by reason."""
    cols = ["rule", "processed", "rejected", "rejection_rate"]
    if df.empty:
        return pd.DataFrame(columns=cols), pd.DataFrame()
    answered = df[df["status"].isin((Status.ACCEPTED, Status.REJECTED)) & df["gate_known"]]
    rows = []
    exploded = answered.assign(
        rule=answered["gate_rules"].map(lambda s: s.split(";") if s else [NO_RULE])
    ).explode("rule")
    for rule, part in exploded.groupby("rule", sort=True):
        n_rej = int((part["status"] == Status.REJECTED).sum())
        rows.append((rule, len(part), n_rej, n_rej / len(part) if len(part) else None))
    table = pd.DataFrame(rows, columns=cols)
    ko = exploded[exploded["status"] == Status.REJECTED]
    cross = (
        pd.crosstab(ko["reason_code"].map(lambda c: REASON_LABEL.get(c, c)), ko["rule"])
        if not ko.empty
        else pd.DataFrame()
    )
    return table, cross


def gate_summary(df: pd.DataFrame) -> dict[str, int | float | None]:
    """How well the gate predicted: rejections it had warned about, and the converse."""
    answered = df[df["status"].isin((Status.ACCEPTED, Status.REJECTED)) & df["gate_known"]]
    warned = answered["gate_rules"] != ""
    rejected = answered["status"] == Status.REJECTED
    n_rej = int(rejected.sum())
    n_warned = int(warned.sum())
    return {
        "answered_with_verdicts": len(answered),
        "rejected": n_rej,
        "rejected_warned": int((rejected & warned).sum()),
        "warned": n_warned,
        "warned_rejected": int((rejected & warned).sum()),
        "recall": (int((rejected & warned).sum()) / n_rej) if n_rej else None,
        "precision": (int((rejected & warned).sum()) / n_warned) if n_warned else None,
    }


# --------------------------------------------------------------------------------------
# Worklist for the scolarité office
# --------------------------------------------------------------------------------------

WORKLIST_COLUMNS = [
    "clé source",
    "système source",
    "certification",
    "année universitaire",
    "fichier",
    "déposé le",
    "motif CDC",
    "message CDC",
    "règles du contrôle d'identité",
    "cause probable",
    "correction suggérée",
    "suivi",
    "idTechnique",
]


def follow_up(row) -> str:
    """What happened to a rejected passage since its rejection (ledger state now)."""
    if row.current_flux == row.id_flux and row.current_status == Status.REJECTED:
        return "à corriger"
    if row.current_status == Status.BUILT:
        return "corrigé, en cours d'envoi"
    if row.current_flux != row.id_flux:
        return {
            Status.ACCEPTED: "corrigé et renvoyé : accepté",
            Status.STAGED: "corrigé et renvoyé : en attente de dépôt",
            Status.DEPOSITED: "corrigé et renvoyé : en attente de l'accusé",
            Status.REJECTED: "corrigé et renvoyé : rejeté à nouveau",
            Status.FILE_REJECTED: "corrigé et renvoyé : fichier rejeté (XSD)",
        }.get(row.current_status, f"corrigé et renvoyé : {row.current_status}")
    return str(row.current_status)


def advice(reason_code: str, gate_rules: str) -> tuple[str, str]:
    """(likely cause, suggested fix), in French, from the CDC reason and the fired rules."""
    from cpf_deposit.quality.rules import RULE_BY_ID

    cause, fix, related = ADVICE.get(reason_code, ADVICE[Reason.UNKNOWN.value])
    fired = [r for r in gate_rules.split(";") if r] if gate_rules else []
    pointed = [r for r in fired if r in related]
    if pointed:
        cause = f"{cause} Le contrôle d'identité l'avait signalé avant le dépôt : " + " ; ".join(
            f"{r} ({RULE_BY_ID[r].message})" for r in pointed if r in RULE_BY_ID
        )
    others = [r for r in fired if r not in pointed and r in RULE_BY_ID]
    if others:
        fix = f"{fix} Autres signalements : " + " ; ".join(
            f"{r} ({RULE_BY_ID[r].message})" for r in others
        )
    return cause, fix


def worklist(df: pd.DataFrame) -> pd.DataFrame:
    """Latest rejection of each passage (identification, certification, dates)."""
    if df.empty:
        return pd.DataFrame(columns=WORKLIST_COLUMNS)
    rejected = df[df["status"] == Status.REJECTED].sort_values(
        ["technical_id", "decided_at"], kind="stable"
    )
    latest = rejected.drop_duplicates("technical_id", keep="last")
    rows = []
    for r in latest.itertuples(index=False):
        cause, fix = advice(r.reason_code, r.gate_rules)
        rows.append(
            [
                r.source_record_key,
                r.source_system,
                r.certification,
                r.academic_year,
                r.file_name,
                r.deposited_local.strftime("%d/%m/%Y") if r.deposited_local is not None else "",
                REASON_LABEL.get(r.reason_code, r.reason_code),
                r.message or "",
                (r.gate_rules or "").replace(";", ", ") if r.gate_known else "(non disponible)",
                cause,
                fix,
                follow_up(r),
                r.technical_id,
            ]
        )
    out = pd.DataFrame(rows, columns=WORKLIST_COLUMNS)
    todo = (out["suivi"] != "à corriger").to_numpy()
    order = pd.Series(todo).argsort(kind="stable").to_numpy()
    return out.iloc[order].reset_index(drop=True)


def write_worklist(table: pd.DataFrame, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """CSV (UTF-8 with BOM, ``;``, for Excel) and XLSX, both mode 0600, written atomically.

    Every text cell goes through :func:`cpf_deposit.spreadsheet.csv_cell`: a CDC message
    or a source value starting with ``=``, ``+``, ``-``, ``@`` is never a formula, and a
    character a spreadsheet cannot store is shown, not fatal.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    from cpf_deposit.files import open_folder
    from cpf_deposit.spreadsheet import csv_cell

    safe = table.astype(object).map(csv_cell) if len(table) else table
    out_dir = Path(out_dir)
    csv, xlsx = out_dir / f"{stem}.csv", out_dir / f"{stem}.xlsx"
    wb = Workbook()
    ws = wb.active
    ws.title = "Rejets CDC"
    ws.append(list(table.columns))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in safe.itertuples(index=False):
        ws.append(list(row))
    _as_text(ws)
    widths = {"cause probable": 60, "correction suggérée": 70, "message CDC": 60}
    for i, name in enumerate(table.columns, 1):
        letter = ws.cell(row=1, column=i).column_letter
        ws.column_dimensions[letter].width = widths.get(name, 22)
        if name in widths:
            for cell in ws[letter][1:]:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = ws.dimensions
    with open_folder(out_dir) as folder:
        with folder.private_file(csv.name, "w", newline="", encoding="utf-8-sig") as fh:
            safe.to_csv(fh, index=False, sep=";")
        with folder.private_file(xlsx.name) as fh:
            wb.save(fh)
    return csv, xlsx


def _as_text(ws) -> None:
    """Every text cell stays text: never a formula in the workbook."""
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"


def today_stem(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d")
