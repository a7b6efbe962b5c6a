"""The reconciliation dashboard: one self-contained page in the Airflow UI.

What it shows (French, for the deposit operator and the scolarité office): the
reconciliation rate against the CDC's 90 % threshold and the 92,25 % national
average, the passages processed, accepted and rejected, the rate per month of deposit
(the SVG of :mod:`cpf_deposit.receipts.report`), the latest files and their status,
the rejections by CDC reason, and the worklist of rejections to fix, generated on
request (XLSX or CSV) into a temporary folder, sent, and never kept.

How it is served: :func:`create_app` builds a FastAPI app that the Airflow plugin
``plugins/cpf_dashboard.py`` mounts on the api-server under :data:`URL_PREFIX`, with an
external view for the navigation entry. Every route requires an Airflow login: the
user comes from Airflow's own ``get_user`` dependency (JWT cookie of the UI, or a
bearer token), and the auth manager must allow the custom view :data:`RESOURCE_PAGE`
(page) or :data:`RESOURCE_WORKLIST` (worklist download). Airflow and FastAPI are
imported inside the functions only, so the data and HTML parts import anywhere.

Nothing on the page or in the logs names a person; the worklist holds source record
keys (no names) and goes to the browser only.
"""

import datetime as dt
import html
import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and the receipts modules load on first use (see LazyApp)
    from cpf_deposit.receipts.reconcile import Reconciliation

log = logging.getLogger(__name__)

URL_PREFIX = "/cpf-dashboard"  # where the plugin mounts the app on the api-server
URL_ROUTE = "cpf-dashboard"  # the page in the Airflow UI: /plugin/cpf-dashboard
RESOURCE_PAGE = "CPF Rapprochement CDC"  # auth manager custom views (GET)
RESOURCE_WORKLIST = "CPF Liste des rejets"
LATEST_FILES = 20
TO_FIX = "à corriger"

FILE_STATUS_LABEL = {
    "BUILT": "construit, pas encore dans la boîte d'envoi",
    "STAGED": "en attente de dépôt",
    "DEPOSITED": "déposé, en attente de l'accusé",
    "PROCESSED": "traité par la CDC",
    "FILE_REJECTED": "rejeté par la CDC (erreurs XSD)",
    "ABORTED": "abandonné (jamais déposé)",
    "EXPIRED": "expiré avant dépôt",
}
PASSAGE_STATUS_LABEL = {
    "BUILT": "en cours de construction",
    "STAGED": "en attente de dépôt",
    "DEPOSITED": "déposés, en attente de l'accusé",
    "ACCEPTED": "acceptés par la CDC",
    "REJECTED": "rejetés (à corriger puis renvoyer)",
    "FILE_REJECTED": "dans un fichier rejeté (à renvoyer)",
}
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# The page loads nothing from anywhere: styles inline, charts inline SVG, no script.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def pct(rate: float | None) -> str:
    from cpf_deposit.receipts.report import pct as report_pct

    return report_pct(rate)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


# --------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------


@dataclass
class FileRow:
    """One ledger file as the page shows it (no personal data)."""

    file_name: str
    status: str
    passages: int
    built_at: dt.datetime | None
    deposited_at: dt.datetime | None
    accepted: int | None = None
    rejected: int | None = None

    @property
    def rate(self) -> float | None:
        if self.accepted is None or self.rejected is None:
            return None
        done = self.accepted + self.rejected
        return self.accepted / done if done else None


@dataclass
class Snapshot:
    """Everything the page shows, read from the ledger in one go."""

    institution: str
    generated_at: dt.datetime
    tz: dt.tzinfo
    reconciliation: "Reconciliation | None" = None
    files: list[FileRow] = field(default_factory=list)  # latest first
    file_counts: dict[str, int] = field(default_factory=dict)
    passage_counts: dict[str, int] = field(default_factory=dict)
    to_fix: int = 0
    worklist_rows: int = 0
    problem: str | None = None  # why there is nothing to show (French)


def collect(ledger, config, now: dt.datetime | None = None, latest: int = LATEST_FILES):
    """Read the figures of the page from an open ledger."""
    from cpf_deposit.ledger import passage_counts
    from cpf_deposit.ledger.schema import FileStatus
    from cpf_deposit.ledger.status import files_with_status
    from cpf_deposit.receipts.reconcile import reconcile, sendings, worklist

    now = now or dt.datetime.now(dt.UTC)
    df = sendings(ledger, config)
    rec = reconcile(df)
    with ledger.engine.connect() as conn:
        files = files_with_status(conn, *(s.value for s in FileStatus))
    per_file = {  # files rejected on XSD errors had no passage answered: no counts
        r.file_name: (int(r.accepted), int(r.rejected))
        for r in rec.by["file_name"].itertuples(index=False)
        if r.processed
    }
    counts: dict[str, int] = {}
    for f in files:
        counts[str(f.status)] = counts.get(str(f.status), 0) + 1
    rows = []
    for f in reversed(files[-latest:] if latest else files):
        ok_ko = per_file.get(f.file_name)
        rows.append(
            FileRow(
                f.file_name,
                str(f.status),
                f.passages,
                f.built_at,
                f.deposited_at,
                *(ok_ko or (None, None)),
            )
        )
    table = worklist(df)
    return Snapshot(
        institution=config.institution_name,
        generated_at=now,
        tz=config.tz,
        reconciliation=rec,
        files=rows,
        file_counts=counts,
        passage_counts={str(k): v for k, v in passage_counts(ledger).items()},
        to_fix=int((table["suivi"] == TO_FIX).sum()),
        worklist_rows=len(table),
    )


def _ledger_url(config):
    from cpf_deposit.ledger.engine import default_sqlite_path, url_from_conn_id

    return url_from_conn_id(config.ledger_conn_id, default_sqlite_path(config))


def open_existing_ledger(config):
    """The ledger, not migrated from here; None when it does not exist yet (a fresh install)."""
    from cpf_deposit.ledger import LedgerError, open_ledger

    url = _ledger_url(config)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return None
    try:
        return open_ledger(url=url, migrate=False)
    except LedgerError:
        return None
    except Exception as exc:  # an unmigrated database: no table yet
        log.warning("registre illisible pour le tableau de bord : %s", type(exc).__name__)
        return None


def load_snapshot(config, now: dt.datetime | None = None) -> Snapshot:
    ledger = open_existing_ledger(config)
    if ledger is None:
        return Snapshot(
            config.institution_name,
            now or dt.datetime.now(dt.UTC),
            config.tz,
            problem="Le registre des dépôts n'existe pas encore : aucun dépôt n'a été préparé.",
        )
    try:
        return collect(ledger, config, now)
    finally:
        ledger.dispose()


def worklist_bytes(config, kind: str, now: dt.datetime | None = None) -> tuple[str, bytes]:
    """(file name, content) of the worklist, written into a temporary folder then removed."""
    import pandas as pd

    from cpf_deposit.receipts.reconcile import sendings, today_stem, worklist, write_worklist
    from cpf_deposit.receipts.report import WORKLIST_STEM

    if kind not in MEDIA:
        raise ValueError(kind)
    ledger = open_existing_ledger(config)
    if ledger is None:
        table = worklist(pd.DataFrame())
    else:
        try:
            table = worklist(sendings(ledger, config))
        finally:
            ledger.dispose()
    stem = f"{WORKLIST_STEM}-{today_stem(now)}"
    with tempfile.TemporaryDirectory(prefix="cpf-worklist-") as tmp:
        csv, xlsx = write_worklist(table, Path(tmp), stem)
        path = csv if kind == "csv" else xlsx
        return path.name, path.read_bytes()


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------

STYLE = (
    "html{background:#fff}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:1.5em;"
    "color:#222;max-width:1150px;background:#fff}"
    "h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em;"
    "border-bottom:1px solid #ddd;padding-bottom:.2em}"
    "table{border-collapse:collapse;margin:.5em 0 1em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}"
    "td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:1em 0}"
    ".card{border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:150px}"
    ".card .v{font-size:1.8em;font-weight:bold}.card .l{color:#555;font-size:13px}"
    ".ko{color:#c0392b}.ok{color:#27ae60}.muted{color:#666;font-size:13px}"
    ".badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;"
    "background:#eee;white-space:nowrap}"
    ".s-STAGED{background:#fde8c8}.s-DEPOSITED{background:#dbe9f8}"
    ".s-PROCESSED{background:#d5f0dd}.s-FILE_REJECTED{background:#f8d4d0}"
    ".s-ABORTED,.s-EXPIRED{background:#e4e4e4}"
    "a.button{display:inline-block;border:1px solid #2c7fb8;border-radius:4px;"
    "padding:4px 12px;margin-right:8px;color:#2c7fb8;text-decoration:none}"
    "svg{max-width:100%;height:auto}"
    ".nw{white-space:nowrap}.scroll{overflow-x:auto}"
    "#fichiers td:nth-child(2),#fichiers th:nth-child(2){text-align:left}"
)


def _when(value: dt.datetime | None, tz: dt.tzinfo) -> str:
    if value is None:
        return "–"
    if value.tzinfo is None:  # SQLite gives naive UTC back
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(tz).strftime("%d/%m/%Y %H:%M")


def _n(value: int | None) -> str:
    return "–" if value is None else f"{value:,}".replace(",", "\u202f")


def _card(value: str, label: str, klass: str = "") -> str:
    return (
        f"<div class='card'><div class='v {klass}'>{value}</div>"
        f"<div class='l'>{_e(label)}</div></div>"
    )


def _verdict(rate: float | None) -> tuple[str, str]:
    from cpf_deposit.receipts.reconcile import CDC_THRESHOLD, NATIONAL_AVERAGE

    if rate is None:
        return "", "aucun passage traité par la CDC pour l'instant"
    cdc = (
        "au-dessus du seuil de 90 % de la Caisse des Dépôts"
        if rate >= CDC_THRESHOLD
        else "SOUS le seuil de 90 % de la Caisse des Dépôts : elle demande au certificateur d'agir"
    )
    national = (
        "au-dessus de la moyenne nationale (92,25 %)"
        if rate >= NATIONAL_AVERAGE
        else "en dessous de la moyenne nationale (92,25 %)"
    )
    return ("ok" if rate >= CDC_THRESHOLD else "ko"), f"{cdc} ; {national}"


def _figures(snap: Snapshot) -> list[str]:
    from cpf_deposit.receipts.reconcile import CDC_THRESHOLD, NATIONAL_AVERAGE

    rec = snap.reconciliation
    assert rec is not None
    klass, verdict = _verdict(rec.rate)
    return [
        "<div class='cards' id='chiffres'>",
        _card(pct(rec.rate), "taux de rapprochement", f"{klass} taux"),
        _card(pct(CDC_THRESHOLD), "seuil de la CDC"),
        _card(pct(NATIONAL_AVERAGE), "moyenne nationale (mars 2023)"),
        _card(_n(rec.processed), "passages traités"),
        _card(_n(rec.accepted), "acceptés", "ok"),
        _card(_n(rec.rejected), "rejetés", "ko" if rec.rejected else ""),
        "</div>",
        f"<p id='verdict' class='{klass}'>Taux de rapprochement {pct(rec.rate)} : "
        f"{_e(verdict)}.</p>",
        f"<p class='muted'>Dont {_n(rec.already_in_base)} acceptés « existe déjà en base ». "
        f"{_n(rec.file_rejected)} passages dans des fichiers rejetés au contrôle XSD "
        "(hors taux, à renvoyer). Taux = acceptés / traités (acceptés et rejetés).</p>",
    ]


def _passages(snap: Snapshot) -> list[str]:
    if not snap.passage_counts:
        return []
    out = ["<h2>Passages par statut actuel</h2><table id='passages'>"]
    out.append("<tr><th>statut</th><th>code</th><th>passages</th></tr>")
    for code in PASSAGE_STATUS_LABEL:
        if code in snap.passage_counts:
            out.append(
                f"<tr><td>{_e(PASSAGE_STATUS_LABEL[code])}</td><td>{_e(code)}</td>"
                f"<td>{_n(snap.passage_counts[code])}</td></tr>"
            )
    out.append("</table>")
    return out


def _files(snap: Snapshot) -> list[str]:
    waiting = snap.file_counts.get("STAGED", 0)
    out = ["<h2>Derniers fichiers</h2>"]
    if waiting:
        out.append(
            f"<p id='attente'><strong>{waiting} fichier(s) en attente de dépôt</strong> sur "
            "le portail de la Caisse des Dépôts (tâche « await_deposit » dans Airflow).</p>"
        )
    if not snap.files:
        out.append("<p>Aucun fichier construit pour l'instant.</p>")
        return out
    total = sum(snap.file_counts.values())
    if total > len(snap.files):
        out.append(f"<p class='muted'>Les {len(snap.files)} plus récents sur {total}.</p>")
    out.append(
        "<div class='scroll'><table id='fichiers'><tr><th>fichier</th><th>statut</th>"
        "<th>passages</th><th>construit le</th><th>déposé le</th><th>acceptés</th><th>rejetés</th>"
        "<th>taux</th></tr>"
    )
    for f in snap.files:
        label = FILE_STATUS_LABEL.get(f.status, f.status)
        out.append(
            f"<tr><td>{_e(f.file_name)}</td><td><span class='badge s-{_e(f.status)}' "
            f"title='{_e(f.status)}'>{_e(label)}</span> <small>{_e(f.status)}</small></td>"
            f"<td>{_n(f.passages)}</td><td class='nw'>{_when(f.built_at, snap.tz)}</td>"
            f"<td class='nw'>{_when(f.deposited_at, snap.tz)}</td><td>{_n(f.accepted)}</td>"
            f"<td>{_n(f.rejected)}</td><td class='nw'>{pct(f.rate)}</td></tr>"
        )
    out.append("</table></div>")
    return out


def _reasons(snap: Snapshot) -> list[str]:
    import pandas as pd

    from cpf_deposit.receipts.ingest import XSD_REASON
    from cpf_deposit.receipts.reconcile import REASON_LABEL
    from cpf_deposit.receipts.report import bar_chart

    rec = snap.reconciliation
    assert rec is not None
    reasons = rec.reasons if rec.reasons is not None else pd.DataFrame()
    labels = [str(x) for x in reasons.get("label", [])]
    counts = [int(x) for x in reasons.get("rejected", [])]
    out = ["<h2>Rejets par motif de la CDC</h2>", bar_chart(labels, counts)]
    if counts:
        total = sum(counts)
        out.append("<table id='motifs'><tr><th>motif</th><th>rejets</th><th>part</th></tr>")
        for label, n in zip(labels, counts, strict=True):
            out.append(f"<tr><td>{_e(label)}</td><td>{_n(n)}</td><td>{pct(n / total)}</td></tr>")
        out.append("</table>")
    if rec.file_rejected:
        out.append(
            f"<p>{_e(REASON_LABEL[XSD_REASON])} : {_n(rec.file_rejected)} passage(s), "
            "hors taux, renvoyés par un prochain dépôt.</p>"
        )
    return out


def _worklist(snap: Snapshot) -> list[str]:
    return [
        "<h2>Liste des rejets à corriger</h2>",
        f"<p id='a-corriger'>{_n(snap.to_fix)} passage(s) rejeté(s) à corriger dans le "
        f"logiciel de scolarité ({_n(snap.worklist_rows)} rejet(s) suivis au total).</p>",
        "<p><a class='button' href='rejets-a-corriger.xlsx' download>Télécharger (Excel)</a>"
        "<a class='button' href='rejets-a-corriger.csv' download>Télécharger (CSV)</a></p>",
        "<p class='muted'>Fichier généré à la demande et non conservé sur le serveur. Il "
        "contient les clés des dossiers dans le logiciel source (sans nom) : à garder dans "
        "le service de scolarité.</p>",
    ]


def render_page(snap: Snapshot) -> str:
    """The whole page: inline CSS and SVG, no script, nothing loaded from elsewhere."""
    from cpf_deposit.receipts.report import rate_chart

    out = [
        "<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>Rapprochement CDC – {_e(snap.institution)}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Passeport de compétences : rapprochement avec la Caisse des Dépôts</h1>",
        f"<p class='muted'>{_e(snap.institution)} – situation au "
        f"{_when(snap.generated_at, snap.tz)}</p>",
    ]
    if snap.reconciliation is None:
        out.append(f"<p id='probleme'>{_e(snap.problem or 'Aucune donnée.')}</p>")
        out.append("</body></html>")
        return "".join(out)
    out += _figures(snap)
    out += ["<h2>Taux par mois de dépôt</h2>", rate_chart(snap.reconciliation.by["deposit_month"])]
    out += _files(snap)
    out += _passages(snap)
    out += _reasons(snap)
    out += _worklist(snap)
    out.append(
        "<p class='muted'>Un passage rejeté, corrigé puis renvoyé compte dans chacun de ses "
        "fichiers. Le rapport détaillé (par certification, source, année) est écrit par le "
        "DAG cpf_receipts dans le dossier des rapports.</p></body></html>"
    )
    return "".join(out)


# --------------------------------------------------------------------------------------
# The FastAPI app
# --------------------------------------------------------------------------------------


def airflow_authorizer(resource_name: str) -> Callable:
    """A FastAPI dependency: an Airflow user allowed on the custom view ``resource_name``.

    The user comes from Airflow's ``get_user`` (the UI's JWT cookie or a bearer token):
    401 without one, 403 when the auth manager refuses the view.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import GetUserDep
    from fastapi import HTTPException, status

    def authorized(user: GetUserDep) -> None:
        if not get_auth_manager().is_authorized_custom_view(
            method="GET", resource_name=resource_name, user=user
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Accès refusé")

    return authorized


def airflow_login_url(next_url: str) -> str | None:
    from airflow.api_fastapi.app import get_auth_manager

    try:
        return get_auth_manager().get_url_login(next_url=next_url)
    except Exception:  # no auth manager (not in the api-server)
        return None


def _default_config():
    from cpf_deposit.config import load_config

    return load_config()


def create_app(
    config_loader: Callable | None = None,
    authorizer: Callable[[str], Callable] | None = None,
    login_url: Callable[[str], str | None] | None = None,
):
    """The dashboard app; by default the institution config and Airflow's own login.

    ``authorizer(resource_name)`` returns the FastAPI dependency guarding a route;
    ``login_url(next)`` where an unauthenticated browser is sent (None: plain 401).
    """
    from fastapi import Depends, FastAPI, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import HTMLResponse, RedirectResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    load = config_loader or _default_config
    if authorizer is None:
        authorizer, login_url = airflow_authorizer, login_url or airflow_login_url
    page_guard = [Depends(authorizer(RESOURCE_PAGE))]
    worklist_guard = [Depends(authorizer(RESOURCE_WORKLIST))]

    app = FastAPI(
        title="Rapprochement CDC",
        description="Tableau de bord du Passeport de compétences (dépôts et accusés CDC).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def _to_login(request: Request, exc: StarletteHTTPException):
        wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        if exc.status_code == 401 and wants_page and login_url is not None:
            target = login_url(str(request.url))
            if target:
                return RedirectResponse(target, status_code=303)
        return await http_exception_handler(request, exc)

    @app.get("/", response_class=HTMLResponse, dependencies=page_guard)
    def page() -> HTMLResponse:
        snap = load_snapshot(load())
        return HTMLResponse(render_page(snap), headers=PAGE_HEADERS)

    def download(kind: str) -> Response:
        name, content = worklist_bytes(load(), kind)
        return Response(
            content,
            media_type=MEDIA[kind],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get("/rejets-a-corriger.csv", dependencies=worklist_guard)
    def worklist_csv() -> Response:
        return download("csv")

    @app.get("/rejets-a-corriger.xlsx", dependencies=worklist_guard)
    def worklist_xlsx() -> Response:
        return download("xlsx")

    return app


class LazyApp:
    """An ASGI app that builds the dashboard on its first request.

    Airflow loads plugins in every process (scheduler, DAG processor, each task for its
    macros); only the api-server serves the app, so only it pays for FastAPI, pandas
    and Airflow's security module.
    """

    def __init__(self, factory: Callable = create_app):
        self._factory = factory
        self._app = None
        self._lock = threading.Lock()

    @property
    def app(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


def airflow_plugin_parts(app=None) -> tuple[list[dict], list[dict]]:
    """(fastapi_apps, external_views) of the Airflow plugin."""
    app = app if app is not None else LazyApp()
    apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Rapprochement CDC"}]
    views = [
        {
            "name": "Rapprochement CDC",
            "href": URL_PREFIX.lstrip("/") + "/",
            "url_route": URL_ROUTE,
            "destination": "nav",
            "category": "browse",
        }
    ]
    return apps, views
