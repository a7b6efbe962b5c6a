"""idTechnique and data hashes: deterministic, keyed, free of personal data.

Why keyed (HMAC-SHA256 with the ledger's secret key): a plain hash of a student
number and a diploma code can be reversed by trying every student number. Why
deterministic: nightly, annual and backfill runs must give the same passage the
same idTechnique, or the CDC would store it twice. 160 bits of the HMAC make a
collision between two passages practically impossible; the ledger's primary key and
natural-key constraint would still refuse one rather than send it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from cpf_deposit.model import FIELDS, Kind, Passage

_SEP = "\x1f"  # unit separator: cannot occur in an XML-valid identity value
_HASHED_FIELDS = tuple(
    sorted(f.name for f in FIELDS if f.kind is not Kind.INTERNAL and f.name != "technical_id")
)


def _keyed(key: bytes, parts: tuple[str, ...], domain: bytes) -> bytes:
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError("every part of a passage key must be a non-empty string")
    msg = domain + b"\0" + _SEP.join(parts).encode()
    return hmac.new(key, msg, hashlib.sha256).digest()


def make_technical_id(
    key: bytes,
    source_system: str,
    source_record_key: str,
    certification_type: str,
    certification_code: str,
    *,
    scheme: str = "T1",
) -> str:
    """The idTechnique of one award: ``T1-`` and 32 base32 characters (35 in all).

    ``source_record_key`` identifies the person and the award in the source system
    (e.g. student number, diploma, version and year).
    """
    digest = _keyed(
        key,
        (source_system.upper(), source_record_key, certification_type, certification_code),
        b"idTechnique",
    )
    return f"{scheme}-" + base64.b32encode(digest[:20]).decode("ascii")


def technical_id_of(key: bytes, p: Passage) -> str:
    """The idTechnique a passage's provenance calls for (``ValueError`` without provenance)."""
    return make_technical_id(
        key,
        p.source_system or "",
        p.source_record_key or "",
        p.certification_type,
        p.certification_code,
    )


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, dt.date)):
        return str(value)  # date: ISO 8601
    if isinstance(value, tuple):  # DigComp results
        return "|".join(",".join("" if v is None else str(v) for v in r) for r in value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


def data_hash(key: bytes, p: Passage) -> str:
    """Keyed hash of everything the flux says about the passage (not its idTechnique).

    Unknown values are left out, so adding an optional field to the model later does
    not make every accepted passage look changed. Keyed BLAKE2b: a MAC as sound as
    HMAC and several times faster, which counts at a million passages; 128 bits (32
    hex characters) are plenty to see a change and keep ledger rows narrow.
    """
    h = hashlib.blake2b(key=key, digest_size=16, person=b"cpf-data")
    parts = []
    for name in _HASHED_FIELDS:
        value = getattr(p, name)
        if value is None or value == ():
            continue
        parts.append(f"{name}\x1e{_text(value)}")
    h.update("\x1f".join(parts).encode())
    return h.hexdigest()
