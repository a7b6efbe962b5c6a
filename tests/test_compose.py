"""docker-compose.yaml is checked by the real Compose v2 binary (no engine needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import compose
import pytest

REPO = Path(__file__).resolve().parents[1]
# The package's Python wrapper always exits 0; its bundled binary does not.
BINARY = Path(compose.__file__).parent / "docker-compose"

OFFICIAL_LAYOUT = {
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}


def _compose(*args: str, file: Path = REPO / "docker-compose.yaml"):
    return subprocess.run(
        [str(BINARY), "-f", str(file), *args], capture_output=True, text=True, cwd=REPO
    )


def test_compose_file_is_valid():
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_services_follow_the_official_layout_and_oracle_is_opt_in():
    plain = set(_compose("config", "--services").stdout.split())
    assert plain == OFFICIAL_LAYOUT
    with_oracle = set(_compose("--profile", "oracle", "config", "--services").stdout.split())
    assert with_oracle == OFFICIAL_LAYOUT | {"oracle"}


def test_connections_come_from_airflow_conn_variables():
    text = _compose("config").stdout
    assert "AIRFLOW_CONN_CPF_LEDGER" in text and "AIRFLOW_CONN_APOGEE_DB" in text


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("condition: service_healthy", "condition: service_maybe"),
        ("    command: api-server\n", "    command: api-server\n    portz: [1]\n"),
    ],
)
def test_the_check_catches_a_broken_file(tmp_path, broken, message):
    text = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    assert broken in text
    bad = tmp_path / "docker-compose.yaml"
    bad.write_text(text.replace(broken, message, 1), encoding="utf-8")
    assert _compose("config", "-q", file=bad).returncode != 0
