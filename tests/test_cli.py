"""The ``cpf-deposit`` command: exit codes, summaries, and the same code as the library."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from cpf_deposit.cli import build_parser, main
from cpf_deposit.passage_io import write_passages
from cpf_deposit.samples import sample_passages
from tests.conftest import OFFICIAL_SAMPLE


def _last_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_every_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"demo", "build", "validate"} <= set(commands)
    for name, sub in commands.items():
        assert sub.format_help().strip(), name


def test_console_script_is_installed_and_answers_help():
    exe = subprocess.run(
        [sys.executable, "-m", "cpf_deposit.cli", "--help"], capture_output=True, text=True
    )
    assert exe.returncode == 0 and "build" in exe.stdout


def test_build_from_parquet_writes_valid_files(isolated_home, tmp_path, capsys):
    src = tmp_path / "passages.parquet"
    write_passages(sample_passages(), src)
    assert main(["build", str(src), "--out", str(tmp_path / "out")]) == 0
    assert _last_line(capsys).startswith("cpf-deposit build: 1 file(s), 5 passages written")


def test_build_with_refused_passage_exits_1_and_names_it(isolated_home, tmp_path, capsys):
    src = tmp_path / "passages.csv"
    bad = dataclasses.replace(sample_passages()[1], birth_name="X" * 61)
    write_passages([sample_passages()[0], bad], src)
    assert main(["build", str(src), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "refused passage DEMO-0002: birth_name (nomNaissance)" in out
    assert "XXXXXXXX" not in out
    assert out.strip().splitlines()[-1].endswith("1 refused, all files valid")


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "missing.parquet"],
        ["validate", "missing.xml"],
        ["--config", "missing.yaml", "build", "x.parquet"],
        ["demo", "--dags", "nowhere"],
    ],
)
def test_usage_and_config_errors_exit_2(isolated_home, argv, capsys):
    assert main(argv) == 2
    assert "stopped, configuration or usage error" in _last_line(capsys)


def test_unknown_command_exits_2():
    with pytest.raises(SystemExit) as exc:
        main(["deposit-everything"])
    assert exc.value.code == 2


def test_validate_official_sample_ok_and_broken_file_exit_1(tmp_path, capsys):
    assert main(["validate", str(OFFICIAL_SAMPLE)]) == 0
    assert _last_line(capsys).endswith("3 passages, all valid")
    broken = tmp_path / "broken.xml"
    broken.write_text(
        OFFICIAL_SAMPLE.read_text(encoding="utf-8").replace(
            "<cpf:sexe>M</cpf:sexe>", "<cpf:sexe>H</cpf:sexe>", 1
        ),
        encoding="utf-8",
    )
    assert main(["validate", str(broken), "--lang", "en"]) == 1
    out = capsys.readouterr().out
    assert "db855769-bcd6-4253-93cf-e666db666c0a" in out
    assert out.strip().splitlines()[-1].endswith("1 invalid, do not deposit")
