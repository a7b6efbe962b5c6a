"""What a gate run leaves behind: verdicts, the quarantine workbook, an offline report.

Files holding personal data (verdicts carry source keys, the workbook carries names
and suggested fixes) are written through :mod:`cpf_deposit.files`: mode 0600, atomic,
never through a symlink. The HTML report holds counts per
rule only and renders offline: no script, no stylesheet, no font from a CDN.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from cpf_deposit.files import private_file
from cpf_deposit.quality.gate import RULE_SEPARATOR, GateResult
from cpf_deposit.quality.rules import BLOCK, NOTE, RULES, WARN

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
    f = f[f["severity"] != NOTE]  # policy notes are not work for the office
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
    """The workbook for the scolarité office, as CSV (UTF-8 with BOM, ``;``) and XLSX.

    Whatever a source value holds, both files are written: cells are formula-safe and
    characters a spreadsheet cannot store are shown as ``⟨U+XXXX⟩``
    (:mod:`cpf_deposit.spreadsheet`). The XLSX is written in openpyxl's streaming
    mode: blocked rows first, then warnings, then the rule catalogue."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font

    from cpf_deposit.spreadsheet import csv_column, needs_care, xlsx_text

    out = Path(out_dir)
    table = quarantine_table(result)
    csv, xlsx = out / f"{QUARANTINE}.csv", out / f"{QUARANTINE}.xlsx"
    safe = table.apply(csv_column) if len(table) else table
    with private_file(csv, "w", newline="", encoding="utf-8-sig") as fh:
        safe.to_csv(fh, index=False, sep=";")

    wb = Workbook(write_only=True)
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
    wrapped = {"messages", "corrections suggérées"}
    widths = {"messages": 80, "corrections suggérées": 60}

    def cell(ws, value, column: str):
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return None
        care = needs_care(value)
        if not care and column not in wrapped:
            return value
        c = WriteOnlyCell(ws, value=xlsx_text(value) if care else value)
        c.data_type = "s"  # text, never a formula, whatever it starts with
        if column in wrapped:
            c.alignment = wrap
        return c

    columns = list(table.columns)
    for title, verdict in (("Bloqués", VERDICT_FR[BLOCK]), ("Avertissements", VERDICT_FR[WARN])):
        ws = wb.create_sheet(title)
        for i, name in enumerate(columns, start=1):
            ws.column_dimensions[_letter(i)].width = widths.get(name, 18)
        ws.freeze_panes = "A2"
        header = []
        for name in columns:
            h = WriteOnlyCell(ws, value=name)
            h.font = bold
            header.append(h)
        ws.append(header)
        part = table[table["verdict"] == verdict]
        for values in part.itertuples(index=False):
            ws.append([cell(ws, v, name) for v, name in zip(values, columns, strict=True)])
    rules = wb.create_sheet("Règles")
    rules.append(["règle", "gravité", "message"])
    for r in RULES:
        if r.severity != NOTE:
            rules.append([r.id, r.severity, r.message])
    with private_file(xlsx) as fh:
        wb.save(fh)
    return csv, xlsx


def _letter(i: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(i)


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
