"""The dashboard in a real Airflow api-server, loaded by headless Chromium.

The api-server runs on a free localhost port with this repository's ``plugins/``
folder, a throwaway Airflow home and the small ledger of ``conftest.py``; the
SimpleAuthManager's "all admins" mode stands in for the login (the login itself is
tested with TestClient in ``test_dashboard.py``). Chromium is the Debian package
``chromium`` (``make services`` installs it): without it this test fails, it does
not skip. Every process started here is stopped (its whole process group).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.ui.conftest import FILE_A, FILE_B, FILE_C

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,1700",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run `make services` (apt-get install chromium)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL what is left after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def get(url: str, timeout: float = 5) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@pytest.fixture
def api_server(state, config, tmp_path):
    """``airflow api-server`` with the plugin, serving the small ledger; its base URL."""
    port = free_port()
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "cpf-dashboard-ui-test-secret-" + "x" * 40,
        "CPF_DEPOSIT_CONFIG": str(config.source_file),
        "GX_ANALYTICS_ENABLED": "false",
    }
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (tmp_path / "api-server.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped whole
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail("api-server exited:\n" + (tmp_path / "api-server.log").read_text())
            try:
                if get(f"{base}/api/v2/monitor/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("api-server not up:\n" + (tmp_path / "api-server.log").read_text())
            time.sleep(0.5)
        yield base
    finally:
        stop(proc)
        log.close()


def run_chromium(args: list[str], profile: Path, timeout: float = 40) -> str:
    proc = subprocess.Popen(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        stop(proc)
    return out.decode("utf-8", "replace")


@pytest.mark.slow
def test_dashboard_in_a_real_api_server(api_server, tmp_path):
    chromium()  # fail early, before anything else, when it is missing
    url = f"{api_server}/cpf-dashboard/"

    # the plugin is loaded: its app and its navigation entry
    status, body, _ = get(f"{api_server}/api/v2/plugins")
    assert status == 200, body[:300]
    plugins = {p["name"]: p for p in json.loads(body)["plugins"]}
    plugin = plugins["cpf_dashboard"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/cpf-dashboard"
    assert plugin["external_views"][0]["url_route"] == "cpf-dashboard"

    # the page, as the browser renders it
    dom = run_chromium(["--dump-dom", url], tmp_path / "profile-dom")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    assert "Passeport de compétences : rapprochement avec la Caisse des Dépôts" in text
    assert "80,00 %" in text and "taux de rapprochement" in text
    assert "SOUS le seuil de 90 % de la Caisse des Dépôts" in text
    assert "92,25 %" in text
    assert "10 passages traités" in text and "8 acceptés" in text and "2 rejetés" in text
    for name in (FILE_A, FILE_B, FILE_C):
        assert name in text
    assert "en attente de dépôt" in text and "rejeté par la CDC (erreurs XSD)" in text
    assert "Aucun titulaire : critères obligatoires (étape 1)" in text
    assert "<svg" in dom and "Télécharger (Excel)" in text

    # the downloads, through the same server
    status, body, headers = get(f"{url}rejets-a-corriger.csv")
    assert status == 200
    assert headers["content-disposition"].startswith('attachment; filename="rejets-cdc-')
    assert len(body.decode("utf-8-sig").strip().splitlines()) == 3
    status, body, _ = get(f"{url}rejets-a-corriger.xlsx")
    assert status == 200 and body[:2] == b"PK"

    # a screenshot of the page, and of the page embedded in the Airflow UI
    shot = tmp_path / "dashboard.png"
    run_chromium([f"--screenshot={shot}", url], tmp_path / "profile-shot")
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("CPF_UI_SCREENSHOTS")  # a folder to look at them afterwards
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
        embedded = Path(keep) / "dashboard-in-airflow.png"
        run_chromium(
            [
                "--virtual-time-budget=15000",
                f"--screenshot={embedded}",
                f"{api_server}/plugin/cpf-dashboard",
            ],
            tmp_path / "profile-ui",
            timeout=60,
        )
