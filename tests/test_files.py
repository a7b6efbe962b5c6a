"""The file-system layer (issue 13): no link followed, complete-or-absent files, 0600/0700.

Also the faults the other hardening tests inject: a full disk (``full_disk``: writes
into matching files fail with ENOSPC after a few bytes, as a real full disk does) and
a read-only folder (``read_only``: creating, renaming or removing inside it fails with
EROFS). Both act on the ``os`` calls, so they hit the old code and the new alike.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from cpf_deposit.files import (
    FileTooLarge,
    UnsafePathError,
    ensure_private_file,
    open_folder,
    open_regular,
    private_file,
    temp_owner,
    write_private,
)
from cpf_deposit.flux.writer import Header, write_flux
from cpf_deposit.ledger import open_ledger, passage_counts, select_delta
from cpf_deposit.ledger.schema import FileStatus, Status, ledger_file
from cpf_deposit.staging import MANIFEST_SUFFIX, IdCollector, stage, start_run
from tests.ledger_helpers import passages

# --------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------


def _where(path, dir_fd=None) -> str:
    path = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(path):
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.path.abspath(path)


class _Full:
    """A file object whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, fh, where: str, room: int):
        self._fh, self._where, self._room = fh, where, room

    def write(self, data):
        if len(data) > self._room:
            if self._room:
                self._fh.write(data[: self._room])
                self._fh.flush()  # what fitted reaches the file, as on a real disk
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._where)
        self._room -= len(data)
        return self._fh.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()

    def __getattr__(self, name):
        return getattr(self._fh, name)


def full_disk(monkeypatch, matches: Callable[[str], bool], room: int = 64) -> None:
    """Files opened for writing whose path ``matches`` get ``room`` bytes, then ENOSPC."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        fh = real(fd, mode, *args, **kwargs)
        if any(c in mode for c in "wa+"):
            try:
                where = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                return fh
            if matches(where):
                return _Full(fh, where, room)
        return fh

    monkeypatch.setattr(os, "fdopen", fdopen)


def read_only(monkeypatch, folder: Path) -> None:
    """Creating, renaming or removing anything inside ``folder`` fails with EROFS."""
    root = os.path.realpath(folder)

    def inside(where: str) -> bool:
        where = os.path.realpath(where)
        return where == root or where.startswith(root + os.sep)

    def refuse(where: str):
        return OSError(errno.EROFS, os.strerror(errno.EROFS), where)

    real_open, real_mkdir = os.open, os.mkdir
    real_replace, real_rename, real_unlink, real_link = os.replace, os.rename, os.unlink, os.link
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        if flags & writing and inside(_where(path, dir_fd)):
            raise refuse(_where(path, dir_fd))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path, mode=0o777, *, dir_fd=None):
        if inside(_where(path, dir_fd)):
            raise refuse(_where(path, dir_fd))
        return real_mkdir(path, mode, dir_fd=dir_fd)

    def two(real):
        def move(src, dst, *, src_dir_fd=None, dst_dir_fd=None, **kw):
            for p, fd in ((src, src_dir_fd), (dst, dst_dir_fd)):
                if inside(_where(p, fd)):
                    raise refuse(_where(p, fd))
            return real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, **kw)

        return move

    def unlink(path, *, dir_fd=None):
        if inside(_where(path, dir_fd)):
            raise refuse(_where(path, dir_fd))
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "replace", two(real_replace))
    monkeypatch.setattr(os, "rename", two(real_rename))
    monkeypatch.setattr(os, "link", two(real_link))
    monkeypatch.setattr(os, "unlink", unlink)


def without_logging_noise(err: str) -> str:
    """Drop the "--- Logging error ---" blocks a handler bound to an earlier test's
    closed capture stream prints (a pytest artefact; the real command has none)."""
    kept, skipping = [], False
    for line in err.splitlines():
        if line.startswith("--- Logging error ---"):
            skipping = True
        elif skipping and line.startswith("Arguments: "):
            skipping = False
        elif not skipping:
            kept.append(line)
    return "\n".join(kept)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# --------------------------------------------------------------------------------------
# The layer itself
# --------------------------------------------------------------------------------------


def test_folders_are_made_0700_and_files_0600_atomically(tmp_path):
    with open_folder(tmp_path / "a" / "b") as folder:
        folder.write_bytes("x.json", b"{}")
        with folder.private_file("t.csv", "w", newline="", encoding="utf-8-sig") as fh:
            fh.write("a;b\r\n")
    assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
    assert _mode(tmp_path / "a" / "b" / "x.json") == 0o600
    assert (tmp_path / "a" / "b" / "t.csv").read_bytes() == "\ufeffa;b\r\n".encode()
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["t.csv", "x.json"]  # no temporary


def test_an_existing_file_is_replaced_and_narrowed_to_0600(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o600


def test_a_linked_folder_is_refused_and_nothing_lands_behind_it(tmp_path):
    elsewhere = tmp_path / "dags"
    elsewhere.mkdir()
    (tmp_path / "outbox").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        write_private(tmp_path / "outbox" / "x.xml", b"<flux/>")
    with open_folder(tmp_path / "base") as base:
        os.symlink(elsewhere, tmp_path / "base" / "refused")
        with pytest.raises(UnsafePathError, match="symbolic link"):
            base.sub("refused")
    assert list(elsewhere.iterdir()) == []


def test_a_link_or_a_fifo_is_never_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("ledger key")
    folder = tmp_path / "inbox"
    folder.mkdir()
    os.symlink(secret, folder / "receipt.xml")
    os.mkfifo(folder / "pipe.xml")
    with open_folder(folder) as inbox:
        with pytest.raises(UnsafePathError, match="symbolic link"):
            inbox.open_read("receipt.xml")
        with pytest.raises(UnsafePathError, match="not a regular file"):
            inbox.open_read("pipe.xml")  # refused at once, never waits for a writer
        assert inbox.names() == [] and inbox.names(links=True) == ["receipt.xml"]
    with pytest.raises(UnsafePathError):
        open_regular(folder / "receipt.xml")


def test_a_link_planted_under_the_final_name_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    folder = tmp_path / "out"
    folder.mkdir()
    os.symlink(victim, folder / "f.xml")
    write_private(folder / "f.xml", b"<flux/>")
    assert victim.read_text() == "do not touch"
    assert not (folder / "f.xml").is_symlink() and (folder / "f.xml").read_bytes() == b"<flux/>"


def test_a_full_disk_leaves_neither_the_file_nor_a_temporary(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    write_private(folder / "keep.json", b"previous")
    full_disk(monkeypatch, lambda p: p.startswith(str(folder)), room=3)
    with pytest.raises(OSError) as caught:
        write_private(folder / "keep.json", b"x" * 100_000)
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError), private_file(folder / "new.csv", "w", encoding="utf-8") as fh:
        fh.write("y" * 100_000)
    assert sorted(os.listdir(folder)) == ["keep.json"]
    assert (folder / "keep.json").read_bytes() == b"previous"  # the old copy is intact


def test_an_error_while_writing_removes_the_temporary(tmp_path):
    with pytest.raises(RuntimeError), private_file(tmp_path / "x.parquet") as fh:
        fh.write(b"PAR1 half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_past_its_cap_is_removed(tmp_path):
    import io

    with open_folder(tmp_path) as folder, pytest.raises(FileTooLarge):
        folder.copy_in(io.BytesIO(b"x" * 5000), "big.xml", max_bytes=100)
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_recognised():
    assert temp_owner(".CPF_A.xml.0a1b2c3d.part") == "CPF_A.xml"
    assert temp_owner(".CPF_A.xml.manifest.json.part") == "CPF_A.xml.manifest.json"
    assert temp_owner("CPF_A.xml") is None


# --------------------------------------------------------------------------------------
# Staging: the outbox is shared, so links may be planted there during a run
# --------------------------------------------------------------------------------------


def _built(ledger, config, n: int = 5):
    start = start_run(ledger, config, kind="test")
    delta = select_delta(ledger, passages(ledger.id_key, 0, n), start.run_id)
    ids = IdCollector()
    batch = write_flux(
        delta, Header.from_config(config), start.work_dir, tz=config.tz, on_passage=ids
    )
    (wf,) = batch.files
    return start, batch, ids, wf.path.name


def _victims(tmp_path: Path, outbox: Path, names: list[str]) -> list[Path]:
    """Outside files, world-readable, each behind a link planted in the outbox."""
    outbox.mkdir(parents=True, exist_ok=True)
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    victims = []
    for i, name in enumerate(names):
        victim = outside / f"victim-{i}.txt"
        victim.write_text("do not touch")
        os.chmod(victim, 0o644)
        os.symlink(victim, outbox / name)
        victims.append(victim)
    return victims


def _file_status(ledger, name: str) -> str:
    with ledger.engine.connect() as conn:
        return conn.execute(
            select(ledger_file.c.status).where(ledger_file.c.file_name == name)
        ).scalar_one()


def _no_exdev(monkeypatch, name: str) -> None:
    """The work folder and the outbox on two file systems: renaming the file fails."""
    real = os.replace

    def replace(src, dst, **kwargs):
        if os.path.basename(os.fsdecode(src)) == name:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), os.fsdecode(src))
        return real(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("other_file_system", [False, True], ids=["rename", "copy"])
def test_staging_never_follows_a_link_planted_in_the_outbox(
    sqlite_ledger, config, tmp_path, monkeypatch, other_file_system
):
    start, batch, ids, name = _built(sqlite_ledger, config)
    outbox = Path(config.paths.outbox)
    planted = [f".{name}.part", f".{name}{MANIFEST_SUFFIX}.part"]
    victims = _victims(tmp_path, outbox, planted)
    if other_file_system:
        _no_exdev(monkeypatch, name)

    (staged,) = stage(sqlite_ledger, config, start.run_id, batch.files, ids)

    for victim in victims:
        assert victim.read_text() == "do not touch" and _mode(victim) == 0o644
    for final in (staged.file_name, staged.file_name + MANIFEST_SUFFIX):
        assert (outbox / final).is_file() and not (outbox / final).is_symlink()
        assert _mode(outbox / final) == 0o600
    assert _file_status(sqlite_ledger, staged.file_name) == FileStatus.STAGED


def test_staging_refuses_an_outbox_replaced_by_a_link(sqlite_ledger, config, tmp_path):
    start, batch, ids, _ = _built(sqlite_ledger, config)
    elsewhere = tmp_path / "dags"
    elsewhere.mkdir()
    outbox = Path(config.paths.outbox)
    if outbox.exists():
        outbox.rmdir()
    outbox.symlink_to(elsewhere)  # planted during the run
    with pytest.raises(UnsafePathError, match="symbolic link"):
        stage(sqlite_ledger, config, start.run_id, batch.files, ids)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("where", ["manifest", "flux copy"])
def test_a_full_disk_while_staging_leaves_nothing_half_staged(
    sqlite_ledger, config, monkeypatch, where
):
    start, batch, ids, name = _built(sqlite_ledger, config)
    outbox = Path(config.paths.outbox)
    outbox.mkdir(parents=True, exist_ok=True)
    if where == "manifest":
        full_disk(monkeypatch, lambda p: MANIFEST_SUFFIX in p and p.startswith(str(outbox)))
    else:
        _no_exdev(monkeypatch, name)
        full_disk(monkeypatch, lambda p: MANIFEST_SUFFIX not in p and p.startswith(str(outbox)))

    with pytest.raises(OSError) as caught:
        stage(sqlite_ledger, config, start.run_id, batch.files, ids)

    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(outbox) == []  # no hidden .part with names in it, no orphan manifest
    assert _file_status(sqlite_ledger, name) == FileStatus.ABORTED
    assert Status.BUILT not in passage_counts(sqlite_ledger)  # back for the next run


def test_a_read_only_outbox_leaves_nothing_half_staged(sqlite_ledger, config, monkeypatch):
    start, batch, ids, name = _built(sqlite_ledger, config)
    outbox = Path(config.paths.outbox)
    outbox.mkdir(parents=True, exist_ok=True)
    read_only(monkeypatch, outbox)
    with pytest.raises(OSError) as caught:
        stage(sqlite_ledger, config, start.run_id, batch.files, ids)
    assert caught.value.errno == errno.EROFS
    monkeypatch.undo()
    assert os.listdir(outbox) == []
    assert _file_status(sqlite_ledger, name) == FileStatus.ABORTED


def test_the_object_store_outbox_drops_its_temporary_key_on_failure():
    import uuid

    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    from cpf_deposit.staging import ObjectStorageOutbox

    attach("memory", fs=MemoryFileSystem())
    url = f"memory://outbox-{uuid.uuid4().hex[:8]}/out"
    outbox = ObjectStorageOutbox(url)

    def fail(_fout):
        raise OSError(errno.ENOSPC, "No space left on device")

    outbox.put_bytes(b"{}", "a.json")
    with pytest.raises(OSError):
        outbox._publish(fail, "b.xml")
    assert [p.name for p in outbox.root.iterdir()] == ["a.json"]


# --------------------------------------------------------------------------------------
# The SQLite ledger holds the idTechnique key: 0600, its folder 0700, journals too
# --------------------------------------------------------------------------------------


def test_a_new_sqlite_ledger_and_its_journals_are_private(tmp_path):
    path = tmp_path / "base" / "ledger.db"
    ledger = open_ledger(url=f"sqlite:///{path}")
    try:
        with ledger.begin() as conn:
            conn.exec_driver_sql("SELECT 1")
        names = sorted(p.name for p in path.parent.iterdir())
        assert {"ledger.db", "ledger.db-wal", "ledger.db-shm"} <= set(names)
        for name in names:
            assert _mode(path.parent / name) == 0o600, name
        assert _mode(path.parent) == 0o700
    finally:
        ledger.dispose()


def test_an_older_world_readable_ledger_is_narrowed(tmp_path):
    path = tmp_path / "ledger.db"
    sqlite3.connect(path).close()
    os.chmod(path, 0o644)
    wal = tmp_path / "ledger.db-wal"
    wal.write_bytes(b"")
    os.chmod(wal, 0o644)
    open_ledger(url=f"sqlite:///{path}").dispose()
    assert _mode(path) == 0o600
    if wal.exists():
        assert _mode(wal) == 0o600


def test_a_link_in_place_of_the_ledger_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"")
    (tmp_path / "ledger.db").symlink_to(elsewhere)
    with pytest.raises(UnsafePathError):
        ensure_private_file(tmp_path / "ledger.db")
    with pytest.raises(UnsafePathError):
        open_ledger(url=f"sqlite:///{tmp_path / 'ledger.db'}")
