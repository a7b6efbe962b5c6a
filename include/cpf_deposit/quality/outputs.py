"""What a gate run leaves behind: verdicts, the quarantine workbook, an offline report.

Files holding personal data (verdicts carry source keys, the workbook carries names
and suggested fixes) are created with mode 0600. The HTML report holds counts per
rule only and renders offline: no script, no stylesheet, no font from a CDN.
"""

from __future__ import annotations

import html
import os
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from cpf_deposit.quality.gate import RULE_SEPARATOR, GateResult
from cpf_deposit.quality.rules import BLOCK, RULES, WARN

FILE_MODE = 0o600
VERDICTS = "verdicts"
QUARANTINE = "quarantaine"
REPORT_DIR = "data-docs"

# Workbook columns (French, for the scolarité office) and where they come from.
WORKBOOK_COLUMNS = {
    "ligne": "row",
    "clé source": "source_record_key",
    "identifiant personne": "source_person_id",
    "verdict": "verdict",
    "nom de naissance": "birth_name",
    "nom d'usage": "usage_name",
    "prénom 1": "first_name_1",
    "prénom 2": "first_name_2",
    "prénom 3": "first_name_3",
    "sexe": "sex",
    "date de naissance": "birth_date",
    "diplôme": "diploma_label",
    "règles": "rule_ids",
    "messages": "messages",
    "corrections suggérées": "fixes",
}
VERDICT_FR = {BLOCK: "bloqué (non transmis)", WARN: "transmis avec avertissement"}


@contextmanager
def private_file(path: Path, mode: str = "wb", **kwargs):
    """Open ``path`` for writing, created (or truncated) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.chmod(path, FILE_MODE)  # an existing file keeps its mode otherwise
    with os.fdopen(fd, mode, **kwargs) as fh:
        yield fh


def write_verdicts(result: GateResult, out_dir: str | Path) -> tuple[Path, Path]:
    """One row per passage: row, source record key, person id, verdict, rule ids."""
    out = Path(out_dir)
    parquet, csv = out / f"{VERDICTS}.parquet", out / f"{VERDICTS}.csv"
    v = result.verdicts
    with private_file(parquet) as fh:
        v.to_parquet(fh, index=False)
    with private_file(csv, "w", newline="", encoding="utf-8") as fh:
        v.to_csv(fh, index=False)
    return parquet, csv


def quarantine_table(result: GateResult) -> pd.DataFrame:
    """Rows with at least one finding, blocked first, with messages and fixes in French."""
    f = result.findings
    if f.empty:
        return pd.DataFrame(columns=list(WORKBOOK_COLUMNS))
    lines = f["rule_id"] + " : " + f["message"]
    fixes = (f["rule_id"] + " : " + f["fix"].astype("str")).where(f["fix"].notna())
    per_row = pd.DataFrame(
        {
            "row": f["row"],
            "messages": lines,
            "fixes": fixes,
        }
    )
    grouped = per_row.groupby("row", sort=True).agg(
        messages=("messages", "\n".join),
        fixes=("fixes", lambda s: "\n".join(x for x in s if isinstance(x, str))),
    )
    flagged = result.verdicts.set_index("row").loc[grouped.index]
    source = result.prepared.set_index("q_row").loc[grouped.index]
    table = pd.DataFrame(index=grouped.index)
    for label, column in WORKBOOK_COLUMNS.items():
        if column == "row":
            table[label] = grouped.index.to_numpy()
        elif column in ("messages", "fixes"):
            table[label] = grouped[column].to_numpy()
        elif column in ("verdict", "rule_ids", "source_record_key", "source_person_id"):
            values = flagged[column]
            if column == "verdict":
                values = values.map(VERDICT_FR)
            if column == "rule_ids":
                values = values.str.replace(RULE_SEPARATOR, ", ", regex=False)
            table[label] = values.to_numpy()
        else:
            table[label] = source[column].astype("str").to_numpy()
    order = (flagged["verdict"] != BLOCK).to_numpy()
    return table.iloc[pd.Series(order).argsort(kind="stable").to_numpy()].reset_index(drop=True)


def write_quarantine(result: GateResult, out_dir: str | Path) -> tuple[Path, Path]:
    """The workbook for the scolarité office, as CSV (UTF-8 with BOM, ``;``) and XLSX."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    out = Path(out_dir)
    table = quarantine_table(result)
    csv, xlsx = out / f"{QUARANTINE}.csv", out / f"{QUARANTINE}.xlsx"
    with private_file(csv, "w", newline="", encoding="utf-8-sig") as fh:
        table.to_csv(fh, index=False, sep=";")

    wb = Workbook()
    sheets = (
        ("Bloqués", table[table["verdict"] == VERDICT_FR[BLOCK]]),
        ("Avertissements", table[table["verdict"] == VERDICT_FR[WARN]]),
    )
    first = True
    for title, part in sheets:
        ws = wb.active if first else wb.create_sheet()
        first = False
        ws.title = title
        ws.append(list(table.columns))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for values in part.itertuples(index=False):
            ws.append([None if (isinstance(v, float) and pd.isna(v)) else v for v in values])
        ws.freeze_panes = "A2"
        widths = {"messages": 80, "corrections suggérées": 60}
        for i, name in enumerate(table.columns, start=1):
            letter = ws.cell(row=1, column=i).column_letter
            ws.column_dimensions[letter].width = widths.get(name, 18)
        wrap = Alignment(wrap_text=True, vertical="top")
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = wrap
    rules = wb.create_sheet("Règles")
    rules.append(["règle", "gravité", "message"])
    for r in RULES:
        rules.append([r.id, r.severity, r.message])
    with private_file(xlsx) as fh:
        wb.save(fh)
    return csv, xlsx


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eee}.BLOCK{color:#a00;font-weight:bold}
.WARN{color:#a60}.ok{color:#070}.n{text-align:right}
"""


def write_report(result: GateResult, out_dir: str | Path) -> Path:
    """Offline HTML "data docs" of the run: the suite and its results, counts only.

    Great Expectations' own site loads Bootstrap from CDNs; this page is
    self-contained (inline CSS, no script, no external URL)."""
    out = Path(out_dir) / REPORT_DIR
    total = len(result.verdicts)
    counts = result.counts
    rows = []
    for r in RULES:
        n = result.fired.get(r.id, 0)
        pct = f"{100 * n / total:.2f}" if total else "0.00"
        state = '<span class="ok">réussie</span>' if n == 0 else "échouée"
        rows.append(
            f"<tr><td>{html.escape(r.id)}</td><td class='{r.severity}'>{r.severity}</td>"
            f"<td>{html.escape(r.title)}</td><td>{html.escape(r.message)}</td>"
            f"<td>{state}</td><td class='n'>{n}</td><td class='n'>{pct}</td></tr>"
        )
    stats = "".join(
        f"<li>{html.escape(str(k))} : {html.escape(str(v))}</li>"
        for k, v in sorted(result.gx_statistics.items())
    )
    page = f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<title>Contrôle d'identité avant dépôt CDC</title><style>{_CSS}</style></head><body>
<h1>Contrôle d'identité avant dépôt CDC</h1>
<p>Suite d'attentes <code>cpf_identity_gate</code> (Great Expectations), moteur :
{html.escape(result.engine)}, durée {result.seconds:.1f} s.</p>
<p>{total} passage(s) : <span class="BLOCK">{counts[BLOCK]} bloqué(s)</span>,
<span class="WARN">{counts[WARN]} avec avertissement</span>,
<span class="ok">{counts["OK"]} sans remarque</span>.</p>
<ul>{stats}</ul>
<table><thead><tr><th>règle</th><th>gravité</th><th>attente</th><th>message</th>
<th>résultat</th><th>lignes</th><th>%</th></tr></thead><tbody>
{"".join(rows)}
</tbody></table></body></html>
"""
    path = out / "index.html"
    with private_file(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path


def write_all(result: GateResult, out_dir: str | Path) -> dict[str, Path]:
    """Verdicts (Parquet, CSV), quarantine workbook (CSV, XLSX) and the HTML report."""
    vp, vc = write_verdicts(result, out_dir)
    qc, qx = write_quarantine(result, out_dir)
    report = write_report(result, out_dir)
    return {
        "verdicts_parquet": vp,
        "verdicts_csv": vc,
        "quarantine_csv": qc,
        "quarantine_xlsx": qx,
        "report": report,
    }
