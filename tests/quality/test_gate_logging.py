"""The identity gate's log: its own French lines, not Great Expectations' import chatter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A fresh interpreter: GX logs its ~220 "Skipping registering function" lines when it
# is first imported, which in the test session may already have happened.
SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s|%(message)s")
from tests.quality.conftest import TODAY, canonical
from cpf_deposit.quality.gate import run_gate
result = run_gate(canonical({}, {"sex": "F"}, {"first_name_1": "MOHAMED", "sex": "F"}), today=TODAY)
print(result.summary())
"""


def test_gate_log_is_quiet_and_french():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    log = proc.stderr.splitlines()
    assert not [line for line in log if "Skipping registering function" in line]
    assert not [line for line in log if line.startswith("great_expectations") and "|" in line]
    ours = [line.split("|", 1)[1] for line in log if line.startswith("cpf_deposit.quality.gate|")]
    assert ours == [ours[0]] and ours[0].startswith("contrôle d'identité : 3 lignes en ")
    assert proc.stdout.startswith(
        "contrôle d'identité : 3 lignes, 1 OK, 1 avertissement, 1 bloquée (quarantaine), en "
    )
