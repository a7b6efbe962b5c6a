"""The institution config: the example loads, every bad value names its key."""

from __future__ import annotations

import copy

import pytest
import yaml

from cpf_deposit.config import ConfigError, default_config_path, load_config, parse_config


@pytest.fixture
def example():
    return yaml.safe_load(default_config_path().read_text(encoding="utf-8"))


def test_example_config_loads_with_defaults(isolated_home):
    c = load_config()
    assert c.uai == "0720916E" and c.cdc.emetteur_id == "01BJD364"
    assert c.limits.max_file_bytes == 200_000_000 and c.limits.max_passages_per_file == 200_000
    assert c.paths.outbox == isolated_home / "var" / "outbox"
    assert c.xsd_path.is_file() and c.tz.key == "Europe/Paris"
    assert c.sources["apogee"].conn_id == "apogee_db"


@pytest.mark.parametrize(
    ("path", "value", "key", "expected"),
    [
        (("institution", "uai"), "720916E", "institution.uai", "UAI"),
        (("institution", "timezone"), "Europe/Pariss", "institution.timezone", "IANA"),
        (("cdc", "emetteur_id"), "01BJD36", "cdc.emetteur_id", "exactly 8"),
        (("cdc", "emetteur_id"), " 01BJD364", "cdc.emetteur_id", "exactly 8"),
        (("cdc", "certificateur_id"), "01-BJD36", "cdc.certificateur_id", "exactly 8"),
        (("cdc", "contract_id"), "M" * 21, "cdc.contract_id", "at most 20"),
        (
            ("cdc", "nature_deposant"),
            "TIERS_DE_CONFIANCE",
            "cdc.nature_deposant",
            "TIERS_CONFIANCE",
        ),
        (("limits", "max_file_bytes"), 300_000_000, "limits.max_file_bytes", "200000000"),
        (("limits", "max_passages_per_file"), 0, "limits.max_passages_per_file", "from 1"),
        (("limits", "retention_days"), "90", "limits.retention_days", "whole number"),
        (("xsd_path",), "nowhere.xsd", "xsd_path", "existing XSD"),
        (("sources", "apogee", "system"), "scolarite", "sources.apogee.system", "apogee"),
        (("sources", "apogee", "conn_id"), None, "sources.apogee.conn_id", "required"),
        (("cdc", "emeteur_id"), "01BJD364", "cdc.emeteur_id", "known keys"),
    ],
)
def test_bad_value_is_named_with_what_is_expected(example, path, value, key, expected):
    raw = copy.deepcopy(example)
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        parse_config(raw, source="institution.yaml")
    assert err.value.key == key
    assert expected in str(err.value) and "institution.yaml" in str(err.value)


def test_missing_section_is_reported(example):
    del example["cdc"]
    with pytest.raises(ConfigError, match="'cdc'"):
        parse_config(example)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("institution: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_config(bad)


def test_certificateur_defaults_to_emetteur(example):
    del example["cdc"]["certificateur_id"]
    assert parse_config(example).cdc.certificateur_id == "01BJD364"


@pytest.mark.parametrize(("value", "severity"), [("send", "WARN"), ("hold", "BLOCK")])
def test_punctuation_policy_sets_the_severity_of_r05d(tmp_path, value, severity):
    import yaml

    from cpf_deposit.config import default_config_path, load_config
    from cpf_deposit.quality.rules import rules_for

    raw = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    raw["quality"] = {"birth_name_punctuation": value}
    path = tmp_path / "institution.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    rules = {r.id: r for r in rules_for(load_config(path).quality)}
    assert rules["R05D"].severity == severity
    assert all(r.severity == "BLOCK" for r in rules.values() if r.id in ("R01", "R12"))


def test_unknown_punctuation_policy_is_refused(tmp_path):
    import yaml

    from cpf_deposit.config import ConfigError, default_config_path, load_config

    raw = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    raw["quality"] = {"birth_name_punctuation": "maybe"}
    path = tmp_path / "institution.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"quality\.birth_name_punctuation"):
        load_config(path)
