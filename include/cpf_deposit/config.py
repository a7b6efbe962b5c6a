"""The institution config: one YAML file, every key checked on load.

The documented example ships in the package (``data/institution.example.yaml``) and
is also the embedded default, so a fresh clone runs without writing any config. A
bad value raises :class:`ConfigError` naming the key and what is expected.

Relative paths are resolved against ``paths.base_dir``; a relative ``base_dir`` (the
default is ``var``) against ``$CPF_DEPOSIT_HOME`` or, failing that, the current
working directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cpf_deposit import errors

ENV_CONFIG = "CPF_DEPOSIT_CONFIG"
ENV_HOME = "CPF_DEPOSIT_HOME"
SOURCE_SYSTEMS = ("apogee", "geode", "pegase")

_BCR = re.compile(r"[0-9A-Za-z]{8}")
_UAI = re.compile(r"[0-9]{7}[A-Z]")
_CONN_ID = re.compile(r"[A-Za-z0-9_]+")


class ConfigError(errors.ConfigError, ValueError):
    """A config key is missing, unknown or holds a value of the wrong shape (terminal:
    the file must be fixed)."""

    def __init__(self, key: str, expected: str, source: str | None = None):
        where = f" in {source}" if source else ""
        super().__init__(f"config key '{key}'{where}: expected {expected}")
        self.key = key
        self.expected = expected


@dataclass(frozen=True)
class CdcAccount:
    """Identifiers the CDC gave the institution (portal 'matricule' = BCR)."""

    emetteur_id: str  # flux/emetteur/idClient
    certificateur_id: str  # certificateur/idClient
    contract_id: str  # certificateur/idContrat
    nature_deposant: str | None = None


@dataclass(frozen=True)
class Paths:
    base_dir: Path
    outbox: Path
    inbox: Path
    archive: Path
    quarantine: Path
    reports: Path
    work: Path


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 200_000_000
    max_passages_per_file: int = 200_000
    retention_days: int = 90


@dataclass(frozen=True)
class QualityPolicy:
    """Choices the institution makes about the identity gate (docs/quality.md).

    ``birth_name_punctuation``: a birth name whose hyphens, spaces, apostrophes or
    particle differ from its usual INSEE spelling (rule R05D) is ``hold`` (quarantined
    until the office checks it: the CDC compares punctuation strictly, guide V3, and
    both error models measure 83-85 % of these names wrong) or ``send`` (sent with a
    warning: for when the CDC's announced loose comparison is in force)."""

    birth_name_punctuation: str = "hold"


PUNCTUATION_POLICIES = ("send", "hold")


@dataclass(frozen=True)
class Source:
    """One student information system the institution extracts from."""

    name: str
    system: str  # apogee | geode | pegase
    conn_id: str
    certification_map: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    institution_name: str
    uai: str
    timezone: str
    cdc: CdcAccount
    paths: Paths
    limits: Limits
    xsd_path: Path
    ledger_conn_id: str
    sources: Mapping[str, Source]
    source_file: Path | None = None
    quality: QualityPolicy = QualityPolicy()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def default_config_path() -> Path:
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    return Path(str(resources.files("cpf_deposit") / "data" / "institution.example.yaml"))


def shipped_xsd() -> Path:
    return Path(str(resources.files("cpf_deposit") / "schema" / "cpf-flux-1.1.2.xsd"))


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and check the institution config (default: $CPF_DEPOSIT_CONFIG or the example)."""
    import yaml

    file = Path(path) if path is not None else default_config_path()
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("(file)", f"a readable YAML file, but {file} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"valid YAML ({exc})", str(file)) from None
    except UnicodeDecodeError as exc:
        expected = f"UTF-8 text (byte {exc.start + 1} is not)"
        raise ConfigError("(file)", expected, str(file)) from None
    except OSError as exc:
        raise ConfigError("(file)", f"a readable file ({exc.strerror})", str(file)) from None
    return parse_config(raw, source=str(file), file=file)


def parse_config(raw: Any, source: str | None = None, file: Path | None = None) -> Config:
    r = _Reader(source)
    top = r.mapping(raw, "")
    r.known(
        top,
        "",
        {"institution", "cdc", "paths", "limits", "xsd_path", "ledger", "sources", "quality"},
    )

    inst = r.mapping(r.required(top, "institution", ""), "institution")
    r.known(inst, "institution", {"name", "uai", "timezone"})
    name = r.text(r.required(inst, "name", "institution"), "institution.name")
    uai = r.match(
        r.required(inst, "uai", "institution"),
        "institution.uai",
        _UAI,
        "a UAI: 7 digits and an upper-case letter, e.g. 0720916E",
    )
    tz = r.timezone(inst.get("timezone", "Europe/Paris"), "institution.timezone")

    cdc_raw = r.mapping(r.required(top, "cdc", ""), "cdc")
    r.known(cdc_raw, "cdc", {"emetteur_id", "certificateur_id", "contract_id", "nature_deposant"})
    bcr = "a CDC client number (BCR): exactly 8 letters or digits, e.g. 03VML243"
    emetteur = r.match(r.required(cdc_raw, "emetteur_id", "cdc"), "cdc.emetteur_id", _BCR, bcr)
    certificateur = r.match(
        cdc_raw.get("certificateur_id", emetteur), "cdc.certificateur_id", _BCR, bcr
    )
    contract = r.text(r.required(cdc_raw, "contract_id", "cdc"), "cdc.contract_id", max_len=20)
    nature = cdc_raw.get("nature_deposant")
    if nature is not None and nature not in ("CERTIFICATEUR", "TIERS_CONFIANCE"):
        raise ConfigError("cdc.nature_deposant", "CERTIFICATEUR or TIERS_CONFIANCE", source)

    paths = _parse_paths(r, top.get("paths", {}) or {})

    lim_raw = r.mapping(top.get("limits", {}) or {}, "limits")
    r.known(lim_raw, "limits", {"max_file_bytes", "max_passages_per_file", "retention_days"})
    limits = Limits(
        max_file_bytes=r.integer(
            lim_raw.get("max_file_bytes", Limits.max_file_bytes),
            "limits.max_file_bytes",
            low=100_000,
            high=200_000_000,
        ),
        max_passages_per_file=r.integer(
            lim_raw.get("max_passages_per_file", Limits.max_passages_per_file),
            "limits.max_passages_per_file",
            low=1,
            high=200_000,
        ),
        retention_days=r.integer(
            lim_raw.get("retention_days", Limits.retention_days),
            "limits.retention_days",
            low=1,
            high=3650,
        ),
    )

    xsd_raw = top.get("xsd_path")
    xsd = shipped_xsd() if xsd_raw is None else _resolve(Path(r.text(xsd_raw, "xsd_path")), file)
    if not xsd.is_file():
        raise ConfigError("xsd_path", f"an existing XSD file, but {xsd} does not exist", source)

    ledger_raw = r.mapping(top.get("ledger", {}) or {}, "ledger")
    r.known(ledger_raw, "ledger", {"conn_id"})
    ledger_conn = r.match(
        ledger_raw.get("conn_id", "cpf_ledger"), "ledger.conn_id", _CONN_ID, "an Airflow conn id"
    )

    sources = _parse_sources(r, top.get("sources", {}) or {}, file)

    quality_raw = r.mapping(top.get("quality", {}) or {}, "quality")
    r.known(quality_raw, "quality", {"birth_name_punctuation"})
    punctuation = quality_raw.get("birth_name_punctuation", QualityPolicy.birth_name_punctuation)
    if punctuation not in PUNCTUATION_POLICIES:
        raise ConfigError("quality.birth_name_punctuation", "send or hold", source)

    return Config(
        institution_name=name,
        uai=uai,
        timezone=tz,
        cdc=CdcAccount(emetteur, certificateur, contract, nature),
        paths=paths,
        limits=limits,
        xsd_path=xsd,
        ledger_conn_id=ledger_conn,
        sources=sources,
        source_file=file,
        quality=QualityPolicy(birth_name_punctuation=punctuation),
    )


def _parse_paths(r: _Reader, raw: Any) -> Paths:
    m = r.mapping(raw, "paths")
    names = ("outbox", "inbox", "archive", "quarantine", "reports", "work")
    r.known(m, "paths", {"base_dir", *names})
    base = Path(r.text(m.get("base_dir", "var"), "paths.base_dir"))
    if not base.is_absolute():
        base = Path(os.environ.get(ENV_HOME) or Path.cwd()) / base
    resolved = {n: base / r.text(m.get(n, n), f"paths.{n}") for n in names}
    return Paths(base_dir=base, **resolved)


def _parse_sources(r: _Reader, raw: Any, file: Path | None) -> dict[str, Source]:
    m = r.mapping(raw, "sources")
    out: dict[str, Source] = {}
    for name, body in m.items():
        key = f"sources.{name}"
        r.match(name, key, _CONN_ID, "a source name of letters, digits and underscores")
        b = r.mapping(body, key)
        system = b.get("system", name)
        if system not in SOURCE_SYSTEMS:
            raise ConfigError(f"{key}.system", f"one of {', '.join(SOURCE_SYSTEMS)}", r.source)
        conn = r.match(
            r.required(b, "conn_id", key), f"{key}.conn_id", _CONN_ID, "an Airflow conn id"
        )
        cmap = b.get("certification_map")
        cmap_path = None
        if cmap is not None:
            cmap_path = _resolve(Path(r.text(cmap, f"{key}.certification_map")), file)
        options = {
            k: v for k, v in b.items() if k not in ("system", "conn_id", "certification_map")
        }
        out[name] = Source(name, system, conn, cmap_path, options)
    return out


def _resolve(p: Path, file: Path | None) -> Path:
    """A path named in the config is relative to the config file."""
    if p.is_absolute() or file is None:
        return p
    return file.parent / p


class _Reader:
    """Small typed accessors that raise ConfigError with the key path."""

    def __init__(self, source: str | None):
        self.source = source

    def fail(self, key: str, expected: str):
        raise ConfigError(key or "(top level)", expected, self.source)

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, "a mapping of keys to values")
        return value

    def required(self, m: Mapping[str, Any], name: str, parent: str) -> Any:
        key = f"{parent}.{name}" if parent else name
        if m.get(name) is None:
            self.fail(key, "a value (the key is required)")
        return m[name]

    def known(self, m: Mapping[str, Any], parent: str, allowed: set[str]) -> None:
        for k in m:
            if k not in allowed:
                key = f"{parent}.{k}" if parent else str(k)
                self.fail(key, f"one of the known keys: {', '.join(sorted(allowed))}")

    def text(self, value: Any, key: str, max_len: int | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "a non-empty string")
        if value != value.strip():
            self.fail(key, "no leading or trailing spaces")
        if max_len is not None and len(value) > max_len:
            self.fail(key, f"at most {max_len} characters")
        return value

    def match(self, value: Any, key: str, pattern: re.Pattern[str], expected: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            self.fail(key, expected)
        return value

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(key, f"a whole number from {low} to {high}")
        return value

    def timezone(self, value: Any, key: str) -> str:
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(key, "an IANA time zone name, e.g. Europe/Paris")
        return str(value)
