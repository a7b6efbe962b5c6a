"""The dashboard app through FastAPI's TestClient, on a small ledger (see conftest)."""

from __future__ import annotations

import importlib.util
import io
import re
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cpf_deposit import dashboard
from tests.ui.conftest import FILE_A, FILE_B, FILE_C, source_key

REPO = Path(__file__).resolve().parents[2]


def allow(_resource: str):
    def authorized() -> None:
        return None

    return authorized


@pytest.fixture
def client(state, config):
    return TestClient(dashboard.create_app(config_loader=lambda: config, authorizer=allow))


def test_page_shows_the_figures_files_and_reasons(client):
    r = client.get("/")
    assert r.status_code == 200
    page = r.text
    text = re.sub(r"<[^>]+>", " ", page)
    assert "80,00 %" in page  # 8 accepted / 10 processed
    assert "SOUS le seuil de 90 % de la Caisse des Dépôts" in page
    assert "en dessous de la moyenne nationale (92,25 %)" in page
    assert "90,00 %" in page and "92,25 %" in page
    for value, label in (("10", "passages traités"), ("8", "acceptés"), ("2", "rejetés")):
        assert re.search(rf">{value}</div><div class='l'>{label}<", page), label
    assert "4 passages dans des fichiers rejetés au contrôle XSD" in text
    # the latest files first, each with its status
    rows = re.findall(r"<tr><td>(CPF_[^<]+)</td><td><span class='badge s-(\w+)'", page)
    assert rows == [(FILE_C, "STAGED"), (FILE_B, "FILE_REJECTED"), (FILE_A, "PROCESSED")]
    row_b = re.search(rf"<tr><td>{FILE_B}</td>.*?</tr>", page)[0]
    assert re.sub(r"<[^>]+>", "|", row_b).endswith("|–||–||–||")  # no passage answered
    assert "1 fichier(s) en attente de dépôt" in page
    assert "en attente de dépôt" in page and "rejeté par la CDC (erreurs XSD)" in page
    # rejections by reason, with the rate-over-time plot of the report
    assert "Aucun titulaire : critères obligatoires (étape 1)" in page
    assert "Plusieurs titulaires identifiés" in page
    assert 'aria-label="Taux de rapprochement par mois de dépôt"' in page
    assert "2 passage(s) rejeté(s) à corriger" in page
    assert "href='rejets-a-corriger.xlsx'" in page and "rejets-a-corriger.csv" in page


def test_page_is_self_contained_and_holds_no_personal_data(client):
    r = client.get("/")
    page = r.text
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # nothing from elsewhere
    assert "@import" not in page and "url(" not in page
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert r.headers["cache-control"] == "no-store"
    for i in (8, 9, 100, 200):  # rejected, file-rejected and staged passages
        assert source_key(i) not in page
    assert "NOM8" not in page and "Camille" not in page


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_worklist_download_is_generated_and_not_kept(client, kind, tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    r = client.get(f"/rejets-a-corriger.{kind}")
    assert r.status_code == 200
    assert re.fullmatch(
        rf'attachment; filename="rejets-cdc-a-corriger-\d{{8}}\.{kind}"',
        r.headers["content-disposition"],
    )
    assert r.headers["cache-control"] == "no-store"
    assert list(tmp.iterdir()) == []  # written into a temporary folder, then removed
    if kind == "csv":
        assert r.headers["content-type"].startswith("text/csv")
        body = r.content.decode("utf-8-sig")
        lines = body.strip().splitlines()
    else:
        from openpyxl import load_workbook

        ws = load_workbook(io.BytesIO(r.content)).active
        lines = [";".join(str(c or "") for c in row) for row in ws.iter_rows(values_only=True)]
        body = "\n".join(lines)
    assert lines[0].startswith("clé source;système source;certification")
    assert len(lines) == 3  # header and the two rejected passages
    assert source_key(8) in body and source_key(9) in body
    assert "à corriger" in body
    assert "NOM8" not in body and "Camille" not in body  # no names


def test_a_fresh_install_without_ledger(config):
    app = dashboard.create_app(config_loader=lambda: config, authorizer=allow)
    with TestClient(app) as c:
        r = c.get("/")
        assert r.status_code == 200
        assert "Le registre des dépôts n&#x27;existe pas encore" in r.text
        csv = c.get("/rejets-a-corriger.csv")
        assert csv.status_code == 200
        assert len(csv.content.decode("utf-8-sig").strip().splitlines()) == 1


def test_every_route_is_guarded(state, config):
    seen = []

    def deny(resource: str):
        from fastapi import HTTPException

        def refuse() -> None:
            seen.append(resource)
            raise HTTPException(401, "Not authenticated")

        return refuse

    c = TestClient(dashboard.create_app(config_loader=lambda: config, authorizer=deny))
    for path in ("/", "/rejets-a-corriger.csv", "/rejets-a-corriger.xlsx"):
        assert c.get(path).status_code == 401, path
    page, worklist = dashboard.RESOURCE_PAGE, dashboard.RESOURCE_WORKLIST
    assert seen == [page, worklist, worklist]


@pytest.fixture
def airflow_auth(monkeypatch):
    """Airflow's SimpleAuthManager, initialised in this process as the api-server does."""
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER",
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    )
    from airflow import settings
    from airflow.api_fastapi.app import init_auth_manager, purge_cached_app
    from airflow.models.revoked_token import RevokedToken

    # a token is checked against the revoked ones: the only metadata table needed here
    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    purge_cached_app()
    manager = init_auth_manager()
    yield manager
    purge_cached_app()


def test_airflow_login_is_required(state, config, airflow_auth):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    c = TestClient(dashboard.create_app(config_loader=lambda: config), follow_redirects=False)
    for path in ("/", "/rejets-a-corriger.csv", "/rejets-a-corriger.xlsx"):
        assert c.get(path).status_code == 401, path
    assert c.get("/", headers={"Authorization": "Bearer forged"}).status_code == 403
    # a browser without the UI's cookie goes to Airflow's login page, then back here
    r = c.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"].startswith("/auth/login?next=")

    token = airflow_auth.generate_jwt(SimpleAuthManagerUser(username="lea", role="viewer"))
    c.cookies.set("_token", token)  # the cookie the Airflow UI sets at login
    r = c.get("/")
    assert r.status_code == 200 and "80,00 %" in r.text
    assert c.get("/rejets-a-corriger.csv").status_code == 200
    c.cookies.clear()
    r = c.get("/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


def test_the_plugin_registers_the_app_and_the_view():
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    spec = importlib.util.spec_from_file_location(
        "cpf_dashboard", REPO / "plugins" / "cpf_dashboard.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.CpfDashboardPlugin
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == dashboard.URL_PREFIX
    assert not any(app["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    assert isinstance(app["app"], dashboard.LazyApp)  # built on the first request
    assert {r.path for r in app["app"].app.routes} >= {
        "/",
        "/rejets-a-corriger.csv",
        "/rejets-a-corriger.xlsx",
    }
    (view,) = plugin.external_views
    view = ExternalViewResponse(**view)
    assert view.url_route == dashboard.URL_ROUTE and view.destination == "nav"
    assert view.href == "cpf-dashboard/"  # relative: resolved against the UI's base URL
