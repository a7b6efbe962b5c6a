"""Receipts from an object-store inbox (``s3://``, ``gs://``…), through Airflow's ObjectStoragePath.

fsspec's in-memory filesystem stands in for the bucket: the same ObjectStoragePath
calls (list, stat, open, rename, unlink) as against S3, with no server.
"""

from __future__ import annotations

import uuid

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from cpf_deposit.ledger import Status, passage_counts
from cpf_deposit.receipts.ingest import (
    APPLIED,
    REFUSED,
    ObjectStorageInbox,
    ReceiptArchive,
    ingest_inbox,
)
from tests.receipts.conftest import deposit_file, snapshot
from tests.receipts.test_ingest import FILE, FLUX, IDS, RNAME, STAGE_1, receipt_xml


@pytest.fixture
def bucket():
    """A fresh ``memory://`` inbox, attached the way a deployment attaches its store."""
    from airflow.sdk.io import attach

    attach("memory", fs=MemoryFileSystem())
    root = f"memory://cdc-{uuid.uuid4().hex[:8]}/inbox"
    yield root, MemoryFileSystem()


def test_a_receipt_in_the_bucket_is_applied_archived_and_removed(ledger, config, bucket):
    url, fs = bucket
    deposit_file(ledger, FILE, FLUX, IDS)
    fs.pipe(f"{url}/{RNAME}", receipt_xml(ko=[("T-A", STAGE_1)], ok=IDS[1:]).encode())

    report = ingest_inbox(ledger, config, ObjectStorageInbox(url))

    (r,) = report.results
    assert (r.status, r.accepted, r.rejected_total) == (APPLIED, 3, 1)
    assert passage_counts(ledger) == {Status.ACCEPTED: 3, Status.REJECTED: 1}
    assert not fs.exists(f"{url}/{RNAME}")  # moved out of the bucket once archived
    archived = ReceiptArchive.of(config).root / r.archived_as
    assert archived.read_bytes() == receipt_xml(ko=[("T-A", STAGE_1)], ok=IDS[1:]).encode()
    assert archived.stat().st_mode & 0o777 == 0o600


def test_a_hostile_receipt_is_refused_inside_the_bucket(ledger, config, bucket):
    url, fs = bucket
    deposit_file(ledger, FILE, FLUX, IDS)
    before = snapshot(ledger)
    hostile = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f"<rapport><nomFichier>{FILE}</nomFichier><PassagesOK><idTechnique>&x;</idTechnique>"
        "</PassagesOK></rapport>"
    )
    fs.pipe(f"{url}/{RNAME}", hostile.encode())

    (r,) = ingest_inbox(ledger, config, ObjectStorageInbox(url)).results

    assert r.status == REFUSED and r.refused_to.startswith(f"{url}/refused/")
    refused = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{url}/refused", detail=False))
    assert refused == [RNAME, RNAME + ".motif.txt"]
    assert "entit" in fs.cat(f"{url}/refused/{RNAME}.motif.txt").decode()
    assert snapshot(ledger) == before
