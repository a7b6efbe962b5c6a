"""idTechnique, data hashes and holder keys: deterministic, keyed, free of personal data.

Why keyed (HMAC-SHA256 with the ledger's secret key): a plain hash of a student
number and a diploma code can be reversed by trying every student number. Why
deterministic: nightly, annual and backfill runs must give the same passage the
same idTechnique, or the CDC would store it twice. 160 bits of the HMAC make a
collision between two passages practically impossible; the ledger's primary key and
natural-key constraint would still refuse one rather than send it. A holder key
(:func:`holder_keys`) hashes a civil identity, which a dictionary of names and
birth dates would find from a plain hash: without the key it is not even testable.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

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


def technical_ids(
    key: bytes,
    source_systems: Sequence[str],
    record_keys: Sequence[str],
    certifications: Sequence[tuple[str, str] | None],
    *,
    scheme: str = "T1",
) -> list[str | None]:
    """:func:`make_technical_id` of each row of a batch; None where there is no certification.

    Why a batch form: extraction gives a million rows their idTechnique. The HMAC state
    after the constant start of the message (domain, source system) is computed once
    per system and copied, and the 20-byte digests (four 5-byte base32 groups each)
    are encoded in one call, which costs a fifth of one call per row. A test
    compares the two forms.
    """
    digests = bytearray()
    present: list[bool] = []
    started: dict[str, Any] = {}
    for system, record_key, cert in zip(source_systems, record_keys, certifications, strict=True):
        present.append(cert is not None)
        if cert is None:
            continue
        parts = (record_key, *cert)
        for part in (system, *parts):
            if not isinstance(part, str) or not part:
                raise ValueError("every part of a passage key must be a non-empty string")
        mac = started.get(system)
        if mac is None:
            prefix = f"idTechnique\0{system.upper()}{_SEP}".encode()
            mac = started[system] = hmac.new(key, prefix, hashlib.sha256)
        mac = mac.copy()
        mac.update(_SEP.join(parts).encode())
        digests += mac.digest()[:20]
    encoded = _base32(bytes(digests))
    head = f"{scheme}-"
    out: list[str | None] = []
    at = 0
    for here in present:
        if here:
            out.append(head + encoded[at : at + 32])
            at += 32
        else:
            out.append(None)
    return out


def _base32(data: bytes) -> str:
    """``base64.b32encode`` of whole 5-byte groups, in numpy: the standard one loops in
    Python (4 µs an idTechnique, more than the HMAC)."""
    import numpy as np

    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).reshape(-1, 5)
    return alphabet[bits @ np.array([16, 8, 4, 2, 1], dtype=np.uint8)].tobytes().decode("ascii")


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

    What is hashed: ``name<RS>value`` for each known value, in name order, joined by
    ``<US>`` (:func:`_text` spells the values). Unknown values are left out, so
    adding an optional field to the model later does not make every accepted passage
    look changed. Keyed BLAKE2b: a MAC as sound as HMAC and several times faster,
    which counts at a million passages; 128 bits (32 hex characters) are plenty to
    see a change and keep ledger rows narrow. Changing any of this makes every
    passage look changed: a test pins two hashes.
    """
    h = _blake_for(key).copy()
    h.update("\x1f".join(_hashed_parts(p)).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _blake_for(key: bytes):
    """A keyed BLAKE2b to copy: keying it costs as much as hashing a passage."""
    return hashlib.blake2b(key=key, digest_size=16, person=b"cpf-data")


def _compile_hashed_parts():
    """``name<RS>value`` of each known value, as straight-line code from the field table.

    Why generated: a loop over 40 fields with type tests cost 9 µs a passage, most
    of an annual run's delta. Each line tests for the field's own type and falls
    back on :func:`_text` for anything else, so the result is the same.
    """
    by_name = {f.name: f for f in FIELDS}
    fast = {
        "int": "str(v) if v.__class__ is int else _text(v)",
        "date": "v.isoformat() if v.__class__ is date else _text(v)",
        "bool": '("true" if v else "false") if v.__class__ is bool else _text(v)',
    }
    lines = ["def _hashed_parts(p):", "    out = []", "    add = out.append"]
    for name in _HASHED_FIELDS:
        kind = by_name[name].type
        known = "v is not None and v != ()" if kind == "digcomp" else "v is not None"
        spell = fast.get(kind, "v if v.__class__ is str else _text(v)")
        prefix = name + _RS
        lines += [f"    v = p.{name}", f"    if {known}:", f"        add({prefix!r} + ({spell}))"]
    lines.append("    return out")
    env = {"_text": _text, "date": dt.date}
    exec(compile("\n".join(lines), "<cpf_deposit.ledger.ids._hashed_parts>", "exec"), env)
    return env["_hashed_parts"]


_RS = "\x1e"
_hashed_parts = _compile_hashed_parts()


def holder_keys(
    key: bytes, passages: Sequence[Passage], names: dict[str, str] | None = None
) -> list[str | None]:
    """The holder key of each passage: who holds which certification, keyed, never in clear.

    Why: one person entered twice in a source (two Apogée COD_IND) gives two records,
    hence two idTechniques, for one award; the CDC would store it twice. The delta
    sends no passage whose holder key is already ACCEPTED, or in flight, under another
    idTechnique (``ledger.delta``). What is keyed: certification type and code, then
    the identity as the CDC compares it (:func:`~cpf_deposit.quality.names.cdc_key`
    of the birth name and first name 1, so case, accents and spacing do not count),
    sex, birth year, month and day as the passage carries them.

    None without a full identity (a name, sex or any part of the birth date missing,
    e.g. an estimated birth month, or a passage sent by CPF file number): a name and a
    birth year alone would take two people for one and hold back an award.

    The key is 32 hex characters: 6 of a keyed tag of the certification, then 26 (104
    bits) of the keyed hash of certification and identity. Why the tag first: a run
    reads its passages sorted by certification, so the keys one chunk inserts fall in
    a few places of the ledger's holder-key index instead of all over it, which at a
    few hundred thousand passages costs less than half as much. The tag reveals no
    more than the ledger's certification columns already say.

    Why keyed BLAKE2b with the ledger's id key rather than HMAC-SHA256: a MAC as sound
    (see :func:`data_hash`), three times faster at a million passages; its own
    personalisations keep it apart from the data hash. Changing any of this gives
    every passage a new holder key, so holders already recorded would no longer be
    recognised: a test pins one key.

    ``names``: the folded names already met (:func:`~cpf_deposit.quality.names.cdc_key`
    costs more than the hash), kept by the caller from one batch to the next.
    """
    from cpf_deposit.quality.names import cdc_key  # pandas: not at import time

    tagger, holder = _holder_macs_for(key)
    names = {} if names is None else names
    certs: dict[tuple[str, str], tuple[str, Any]] = {}
    out: list[str | None] = []
    add = out.append
    for p in passages:
        birth_name, first_name = p.birth_name, p.first_name_1
        name = names.get(birth_name)
        if name is None and birth_name is not None:
            name = names[birth_name] = cdc_key(birth_name)
        first = names.get(first_name)
        if first is None and first_name is not None:
            first = names[first_name] = cdc_key(first_name)
        year, month, day, sex = p.birth_year, p.birth_month, p.birth_day, p.sex
        cert = (p.certification_type, p.certification_code)
        if (
            not (name and first and sex and cert[0] and cert[1])
            or year is None
            or month is None
            or day is None
        ):
            add(None)
            continue
        started = certs.get(cert)
        if started is None:  # the certification's tag, and the hash with it absorbed
            text = f"{cert[0]}{_SEP}{cert[1]}".encode()
            tag, mac = tagger.copy(), holder.copy()
            tag.update(text)
            mac.update(text + _SEP.encode())
            started = certs[cert] = (tag.hexdigest()[:6], mac)
        head, mac = started
        h = mac.copy()
        h.update(f"{name}{_SEP}{first}{_SEP}{sex}{_SEP}{year}{_SEP}{month}{_SEP}{day}".encode())
        add(head + h.hexdigest()[:26])
    return out


def holder_key(key: bytes, p: Passage) -> str | None:
    """:func:`holder_keys` of one passage."""
    return holder_keys(key, [p])[0]


@functools.lru_cache(maxsize=8)
def _holder_macs_for(key: bytes):
    """Keyed BLAKE2b states to copy: the certification tag's and the holder hash's."""
    return (
        hashlib.blake2b(key=key, digest_size=16, person=b"cpf-holder-cert"),
        hashlib.blake2b(key=key, digest_size=16, person=b"cpf-holder"),
    )
