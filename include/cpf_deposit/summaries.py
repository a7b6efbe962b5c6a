"""One French line per pipeline step, for the task log: what the step did, in counts.

Why a module of its own: the Airflow tasks and ``cpf-deposit`` get the same words,
and every line is built from the step's JSON-able summary (the XCom), which holds
counts, paths and technical ids only, so no line can carry a name or a birth date.
Missing keys read as zero or are left out: a line never fails a task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cpf_deposit.progress import count_fr, seconds_fr

# Why a passage was not selected (cpf_deposit.ledger.delta.Reason values), in French.
SKIP_REASONS = {
    "already_accepted": "déjà acceptés",
    "changed_after_acceptance": "modifiés après acceptation",
    "awaiting_deposit_or_receipt": "en attente de dépôt ou d'accusé",
    "changed_while_awaiting_receipt": "modifiés en attente d'accusé",
    "rejected_unchanged": "rejetés et non corrigés",
    "claimed_by_another_run": "pris par un autre run",
    "duplicate_in_stream": "en double",
    "no_source_provenance": "sans provenance",
    "technical_id_of_another_passage": "idTechnique déjà pris",
    "passage_known_under_another_technical_id": "connus sous un autre idTechnique",
    "same_holder_under_another_technical_id": (
        "déjà envoyés pour le même titulaire sous un autre idTechnique"
    ),
}


def summary_line(step: str, result: Mapping[str, Any] | None) -> str:
    """The line for ``step`` (extract, gate, delta, build, validate, stage, finish, plan,
    deposit, reminders, ingest, report); another step gets its counts as ``key n``."""
    result = result if isinstance(result, Mapping) else {}
    build = _LINES.get(step)
    if build is None:
        return _generic(step, result)
    return build(result)


# --------------------------------------------------------------------------------------
# Deposit run
# --------------------------------------------------------------------------------------


def _plan(r: Mapping[str, Any]) -> str:
    parts = [f"run {r.get('run_id') or '?'}"]
    what = " ".join(str(r[k]) for k in ("source", "cadence") if r.get(k))
    if what:
        parts.append(what)
    if _window(r):
        parts.append(f"fenêtre {_window(r)}")
    codes = r.get("certifications") or []
    parts.append(
        _n(len(codes), "certification", "certifications") if codes else "toutes certifications"
    )
    if r.get("dry_run"):
        parts.append("essai à blanc")
    line = "plan : " + ", ".join(parts)
    if r.get("recovered"):
        line += f" ; reprise : {r['recovered']}"
    return line


def _extract(r: Mapping[str, Any]) -> str:
    line = (
        f"extraction : {_n(r.get('rows'), 'ligne lue', 'lignes lues')}, "
        f"{_n(r.get('passages'), 'passage', 'passages')}, "
        f"{_n(r.get('errors'), 'erreur', 'erreurs')}, "
        f"{_n(r.get('warnings'), 'avertissement', 'avertissements')}"
    )
    if _window(r):
        line += f" (fenêtre {_window(r)})"
    return line


def _gate(r: Mapping[str, Any]) -> str:
    ok, warn, block = (_int(r.get(k)) for k in ("OK", "WARN", "BLOCK"))
    line = (
        f"contrôle d'identité : {_n(ok + warn + block, 'ligne', 'lignes')}, {count_fr(ok)} OK, "
        f"{_n(warn, 'avertissement', 'avertissements')}, {_n(block, 'bloquée', 'bloquées')}"
    )
    if block:
        line += " (quarantaine)"
    if isinstance(r.get("seconds"), int | float):
        line += f", en {seconds_fr(r['seconds'])}"
    fired = {k: _int(v) for k, v in (r.get("fired") or {}).items() if _int(v)}
    if fired:
        top = sorted(fired.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        line += " ; règles les plus fréquentes : " + ", ".join(
            f"{rule} {count_fr(n)}" for rule, n in top
        )
    return line


def _delta(r: Mapping[str, Any]) -> str:
    head = f"{count_fr(_int(r.get('selected')))} à envoyer"
    chunks = len(r.get("chunks") or [])
    if chunks:
        head += f" en {_n(chunks, 'lot', 'lots')}"
    if "candidates" in r:
        head += f" (sur {_n(r.get('candidates'), 'passage extrait', 'passages extraits')})"
    parts = [head]
    skipped = {k: _int(v) for k, v in (r.get("skipped") or {}).items() if _int(v)}
    for reason, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        parts.append(f"{count_fr(n)} {SKIP_REASONS.get(reason, reason)}")
    for key, words in (
        ("blocked", "bloqués par le contrôle"),
        ("unreadable", "illisibles"),
        ("other_certifications", "d'autres certifications"),
    ):
        if _int(r.get(key)):
            parts.append(f"{count_fr(_int(r.get(key)))} {words}")
    listed = sum(_int(v) for v in (r.get("listed") or {}).values())
    line = "sélection : " + ", ".join(parts)
    if _int(r.get("late")):
        line += (
            f" ; {count_fr(_int(r.get('late')))} obtenu(s) depuis plus de trois mois "
            "(délai légal de transmission dépassé)"
        )
    if listed:
        line += f" ; {count_fr(listed)} à examiner"
    if r.get("dry_run"):
        line += " (essai à blanc : rien n'est réservé)"
    return line


def _build(r: Mapping[str, Any]) -> str:
    files = r.get("files") or []
    refused = r.get("refused") or []
    where = f" (lot {r['chunk']})" if r.get("chunk") else ""
    return (
        f"construction{where} : {_n(len(files), 'fichier', 'fichiers')}, "
        f"{_n(r.get('passages'), 'passage', 'passages')}, "
        f"{_n(len(refused), 'refusé', 'refusés')}"
    )


def _validate(r: Mapping[str, Any]) -> str:
    verdict = "valide" if r.get("valid") else "non valide"
    name = r.get("file") or "fichier"
    return f"validation : {name} {verdict} ({_n(r.get('passages'), 'passage', 'passages')})"


def _stage(r: Mapping[str, Any]) -> str:
    staged = r.get("staged") or []
    if not staged:
        return "dépôt préparé : aucun fichier à déposer"
    passages = sum(_int(f.get("passages")) for f in staged if isinstance(f, Mapping))
    return (
        f"dépôt préparé : {_n(len(staged), 'fichier', 'fichiers')} "
        f"({_n(passages, 'passage', 'passages')}) dans la boîte d'envoi, "
        "à déposer sur le portail de la CDC"
    )


def _finish(r: Mapping[str, Any]) -> str:
    who = f"fin du run {r['run_id']}" if r.get("run_id") else "fin du run"
    released = _int(r.get("released"))
    back = (
        f", {_n(released, 'passage réservé rendu', 'passages réservés rendus')} au registre"
        if released
        else ""
    )
    if r.get("failed"):
        return f"{who} : en échec{back}, dossier de travail conservé pour diagnostic"
    return f"{who} : terminé sans erreur{back}"


def _deposit(r: Mapping[str, Any]) -> str:
    # ``by`` names a person: never in the log line.
    return f"dépôt enregistré : {_n(len(r.get('deposited') or []), 'fichier', 'fichiers')}"


def _reminders(r: Mapping[str, Any]) -> str:
    return (
        f"rappels : {_n(r.get('pending'), 'fichier en attente', 'fichiers en attente')} "
        f"de dépôt, {_n(len(r.get('reminded') or []), 'rappel', 'rappels')}"
    )


# --------------------------------------------------------------------------------------
# Receipts
# --------------------------------------------------------------------------------------


def _ingest(r: Mapping[str, Any]) -> str:
    receipts = [x for x in (r.get("receipts") or []) if isinstance(x, Mapping)]
    by = {s: sum(x.get("status") == s for x in receipts) for s in _RECEIPT_STATUS}
    parts = [_n(len(receipts), "lu", "lus")]
    parts += [_n(by[s], one, many) for s, (one, many) in _RECEIPT_STATUS.items() if by[s]]
    line = "accusés : " + ", ".join(parts)
    line += f" ; {_n(r.get('accepted'), 'passage accepté', 'passages acceptés')}"
    if r.get("problem"):
        line += " ; à examiner (voir le dossier des refusés)"
    return line


_RECEIPT_STATUS = {  # ReceiptResult.status → French (one, many)
    "applied": ("appliqué", "appliqués"),
    "duplicate": ("déjà vu", "déjà vus"),
    "archived": ("archivé", "archivés"),
    "refused": ("refusé", "refusés"),
}


def _report(r: Mapping[str, Any]) -> str:
    rate = r.get("rate")
    processed = _int(r.get("processed"))
    if isinstance(rate, int | float) and processed:
        percent = f"{100 * rate:.1f}".replace(".", ",")
        head = (
            f"{percent} % acceptés sur "
            f"{_n(processed, 'passage traité', 'passages traités')} par la CDC"
        )
    else:
        head = "aucun passage traité par la CDC"
    return f"rapprochement : {head}, {count_fr(_int(r.get('to_fix')))} à corriger"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _generic(step: str, r: Mapping[str, Any]) -> str:
    counts = [
        f"{k} {count_fr(v)}"
        for k, v in r.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return f"{step} : " + (", ".join(counts) if counts else "terminé")


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _n(value: Any, one: str, many: str) -> str:
    """``0 fichier``, ``1 fichier``, ``2 fichiers`` (French: 0 and 1 are singular)."""
    n = _int(value)
    return f"{count_fr(n)} {one if n < 2 else many}"


def _window(r: Mapping[str, Any]) -> str:
    w = r.get("window")
    if not isinstance(w, Mapping) or not (w.get("start") or w.get("end")):
        return ""
    return f"{w.get('start', '?')} → {w.get('end', '?')} exclue"


_LINES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "plan": _plan,
    "extract": _extract,
    "gate": _gate,
    "delta": _delta,
    "build": _build,
    "validate": _validate,
    "stage": _stage,
    "finish": _finish,
    "deposit": _deposit,
    "record_deposit": _deposit,
    "record_deposits": _deposit,
    "reminders": _reminders,
    "remind": _reminders,
    "ingest": _ingest,
    "ingest_receipts": _ingest,
    "receipts": _ingest,
    "report": _report,
    "reconcile": _report,
    "reconcile_and_report": _report,
}
