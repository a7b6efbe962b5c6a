"""The reconciliation report: one offline HTML page, plots drawn here as inline SVG.

No script, no stylesheet, font or image from elsewhere: the page opens from a file
share without network. It holds counts, rates, certification codes and file names
only (no source key, no name), so it can be sent around; the worklist beside it is
the personal part (mode 0600).
"""

from __future__ import annotations

import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cpf_deposit.receipts.reconcile import (
    CDC_THRESHOLD,
    DIMENSIONS,
    NATIONAL_AVERAGE,
    Reconciliation,
    gate_summary,
    reconcile,
    sendings,
    today_stem,
    worklist,
    write_worklist,
)

REPORT_STEM = "rapprochement-cdc"
WORKLIST_STEM = "rejets-cdc-a-corriger"


def pct(rate: float | None) -> str:
    return (
        "–"
        if rate is None or (isinstance(rate, float) and math.isnan(rate))
        else (f"{100 * rate:.2f} %".replace(".", ","))
    )


def _e(text) -> str:
    return html.escape(str(text), quote=True)


# --------------------------------------------------------------------------------------
# SVG
# --------------------------------------------------------------------------------------


def rate_chart(months: pd.DataFrame, width: int = 720, height: int = 280) -> str:
    """Rate per month of deposit (line and points) against the 90 % and 92,25 % lines."""
    left, right, top, bottom = 56, 150, 16, 40
    pw, ph = width - left - right, height - top - bottom
    data = months[months["processed"] > 0] if not months.empty else months
    lo = 0.5
    if not data.empty:
        lo = min(lo, math.floor(float(data["rate"].min()) * 10) / 10)
    lo = max(0.0, min(lo, 0.8))

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (1 - lo))

    parts = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Taux de rapprochement par '
        'mois de dépôt">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    step = 0.1 if 1 - lo > 0.3 else 0.05
    v = lo
    while v <= 1.0001:
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{round(v * 100)} %</text>"
        )
        v += step
    # The two lines are close: the threshold's label goes under its line, the
    # average's above, so they never overlap.
    for value, label, colour, dy in (
        (CDC_THRESHOLD, "seuil CDC 90 %", "#c0392b", 13),
        (NATIONAL_AVERAGE, "moyenne nat. 92,25 %", "#2c7fb8", -4),
    ):
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="{colour}" stroke-dasharray="6 4" stroke-width="1.5"/>'
            f'<text x="{left + pw + 6}" y="{y(value) + dy:.1f}" font-size="11" '
            f'fill="{colour}">{_e(label)}</text>'
        )
    n = len(data)
    if n:
        xs = [left + pw * (i + 0.5) / n for i in range(n)]
        ys = [y(float(r)) for r in data["rate"]]
        if n > 1:
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys, strict=True))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="#333" stroke-width="2"/>')
        every = max(1, n // 12)
        for i, (a, b, row) in enumerate(zip(xs, ys, data.itertuples(index=False), strict=True)):
            colour = "#c0392b" if row.rate < CDC_THRESHOLD else "#27ae60"
            parts.append(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="4" fill="{colour}">'
                f"<title>{_e(row.deposit_month)} : {pct(row.rate)} "
                f"({row.accepted}/{row.processed})</title></circle>"
            )
            if i % every == 0:
                parts.append(
                    f'<text x="{a:.1f}" y="{top + ph + 16}" font-size="11" '
                    f'text-anchor="middle">{_e(row.deposit_month)}</text>'
                )
    else:
        parts.append(
            f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" '
            'font-size="13">aucun accusé de traitement intégré</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(labels: list[str], values: list[int], colour: str = "#8e44ad") -> str:
    """Horizontal bars, one per label, with the count at the end."""
    width, row_h, label_w = 720, 24, 330
    height = max(1, len(labels)) * row_h + 10
    top = max(values) if values else 1
    parts = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Rejets par motif">'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        yy = 5 + i * row_h
        w = (width - label_w - 70) * value / top if top else 0
        parts.append(
            f'<text x="{label_w - 8}" y="{yy + 16}" font-size="12" text-anchor="end">'
            f"{_e(label)}</text>"
            f'<rect x="{label_w}" y="{yy + 3}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{colour}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{yy + 16}" font-size="12">{value}</text>'
        )
    if not labels:
        parts.append('<text x="10" y="20" font-size="13">aucun rejet</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rate_bar(rate: float | None) -> str:
    if rate is None or (isinstance(rate, float) and math.isnan(rate)):
        return ""
    colour = "#c0392b" if rate < CDC_THRESHOLD else "#27ae60"
    return (
        '<svg width="120" height="12" viewBox="0 0 120 12">'
        f'<rect width="120" height="12" fill="#eee"/><rect width="{120 * rate:.1f}" '
        f'height="12" fill="{colour}"/><line x1="{120 * CDC_THRESHOLD:.1f}" '
        f'x2="{120 * CDC_THRESHOLD:.1f}" y1="0" y2="12" stroke="#000"/></svg>'
    )


def _table(df: pd.DataFrame, key: str, key_label: str) -> str:
    head = (
        f"<tr><th>{_e(key_label)}</th><th>acceptés</th><th>rejetés</th><th>traités</th>"
        "<th>fichier rejeté (XSD)</th><th>taux</th><th></th></tr>"
    )
    body = []
    for r in df.itertuples(index=False):
        rate = None if pd.isna(r.rate) else float(r.rate)
        body.append(
            f"<tr><td>{_e(getattr(r, key))}</td><td>{r.accepted}</td><td>{r.rejected}</td>"
            f"<td>{r.processed}</td><td>{r.file_rejected}</td><td>{pct(rate)}</td>"
            f"<td>{_rate_bar(rate)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}"
    "td:first-child,th:first-child{text-align:left}"
    ".big{font-size:2em;font-weight:bold}.ko{color:#c0392b}.ok{color:#27ae60}"
    "small{color:#666}"
)


def render(rec: Reconciliation, df: pd.DataFrame, institution: str, now: dt.datetime) -> str:
    rate = rec.rate
    klass = "ok" if rate is not None and rate >= CDC_THRESHOLD else "ko"
    verdict = (
        "aucun passage traité"
        if rate is None
        else "au-dessus du seuil de 90 % de la Caisse des Dépôts"
        if rate >= CDC_THRESHOLD
        else "SOUS le seuil de 90 % de la Caisse des Dépôts"
    )
    months = rec.by["deposit_month"]
    reasons = rec.reasons if rec.reasons is not None else pd.DataFrame()
    gs = gate_summary(df) if not df.empty else None
    out = [
        "<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'>",
        f"<title>Rapprochement CDC – {_e(institution)}</title><style>{STYLE}</style></head>",
        f"<body><h1>Rapprochement des passages transmis à la Caisse des Dépôts</h1>"
        f"<p><small>{_e(institution)} – rapport du "
        f"{_e(now.strftime('%d/%m/%Y %H:%M'))} (UTC)</small></p>",
        f"<p>Taux de rapprochement : <span class='big {klass}'>{pct(rate)}</span> "
        f"({verdict} ; moyenne nationale de mars 2023 : 92,25 %)</p>",
        f"<p>{rec.processed} passages traités par la CDC : {rec.accepted} acceptés (dont "
        f"{rec.already_in_base} « existe déjà en base »), {rec.rejected} rejetés. "
        f"{rec.file_rejected} passages dans des fichiers rejetés au contrôle XSD (hors "
        "taux, à renvoyer).</p>",
        "<h2>Taux par mois de dépôt</h2>",
        rate_chart(months),
        "<h2>Rejets par motif de la CDC</h2>",
        bar_chart(
            [str(x) for x in reasons.get("label", [])],
            [int(x) for x in reasons.get("rejected", [])],
        ),
    ]
    if rec.reasons is not None and not rec.reasons.empty:
        unknown = df[(df["reason_code"] == "unknown") & (df["status"] == "REJECTED")]
        if not unknown.empty:
            out.append("<h3>Messages inconnus (texte exact de la CDC)</h3><table>")
            out.append("<tr><th>message</th><th>nombre</th></tr>")
            for msg, n in unknown["message"].value_counts().items():
                out.append(f"<tr><td>{_e(msg)}</td><td>{n}</td></tr>")
            out.append("</table>")
    out.append("<h2>Par certification</h2>")
    out.append(_table(rec.by["certification"], "certification", "certification"))
    for col, label in DIMENSIONS.items():
        if col == "certification":
            continue
        out.append(f"<h2>Par {_e(label)}</h2>")
        out.append(_table(rec.by[col], col, label))
    out.append("<h2>Le contrôle d'identité avait-il prévu les rejets ?</h2>")
    if gs is None or not gs["answered_with_verdicts"]:
        out.append("<p>Verdicts du contrôle d'identité indisponibles (purgés ou absents).</p>")
    else:
        out.append(
            f"<p>Sur {gs['rejected']} rejets dont le verdict est connu, {gs['rejected_warned']} "
            f"avaient reçu un avertissement avant le dépôt ({pct(gs['recall'])}). Sur "
            f"{gs['warned']} passages avertis, {gs['warned_rejected']} ont été rejetés "
            f"({pct(gs['precision'])}).</p>"
        )
        gate = rec.gate if rec.gate is not None else pd.DataFrame()
        out.append(
            "<table><tr><th>règle</th><th>traités</th><th>rejetés</th><th>taux de rejet</th>"
        )
        for r in gate.itertuples(index=False):
            out.append(
                f"<tr><td>{_e(r.rule)}</td><td>{r.processed}</td><td>{r.rejected}</td>"
                f"<td>{pct(r.rejection_rate)}</td></tr>"
            )
        out.append("</table>")
        cross = rec.gate_by_reason
        if cross is not None and not cross.empty:
            out.append("<h3>Rejets par motif et par règle déclenchée</h3><table><tr><th>motif</th>")
            out.extend(f"<th>{_e(c)}</th>" for c in cross.columns)
            out.append("</tr>")
            for idx, row in cross.iterrows():
                out.append(f"<tr><td>{_e(idx)}</td>")
                out.extend(f"<td>{int(v)}</td>" for v in row)
                out.append("</tr>")
            out.append("</table>")
    out.append(
        "<p><small>Taux = acceptés / traités (acceptés, y compris « existe déjà en base », "
        "et rejetés). Un passage rejeté, corrigé puis renvoyé compte dans chacun de ses "
        "fichiers.</small></p></body></html>"
    )
    return "".join(out)


@dataclass
class ReportFiles:
    html: Path
    worklist_csv: Path
    worklist_xlsx: Path
    reconciliation: Reconciliation
    worklist_rows: int
    to_fix: int


def write_report(ledger, config, out_dir: Path | None = None, now: dt.datetime | None = None):
    """The HTML report and the worklist (CSV, XLSX) into ``paths.reports`` (atomic,
    0600, through :mod:`cpf_deposit.files`)."""
    from cpf_deposit.files import private_dir, write_private

    now = now or dt.datetime.now(dt.UTC)
    out_dir = private_dir(Path(out_dir or config.paths.reports))
    df = sendings(ledger, config)
    rec = reconcile(df)
    stem = today_stem(now)
    page = out_dir / f"{REPORT_STEM}-{stem}.html"
    write_private(page, render(rec, df, config.institution_name, now))
    table = worklist(df)
    csv, xlsx = write_worklist(table, out_dir, f"{WORKLIST_STEM}-{stem}")
    return ReportFiles(
        page, csv, xlsx, rec, len(table), int((table["suivi"] == "à corriger").sum())
    )
