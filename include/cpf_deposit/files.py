"""One file-system layer for every file the package reads or writes in its folders.

Why: the outbox and the inbox are shared with people (whoever deposits the files on
the CDC portal, whoever downloads the receipts), so anyone who can write there can
plant a symbolic link or a FIFO under a name the package is about to use. Following
such a link once is enough to overwrite a file elsewhere, or to write 800 holders'
names into a world-readable file an attacker chose. So every folder of the package
(outbox, inbox, ``inbox/refused``, archive, quarantine, reports, work, the ledger's
folder) is opened once as a directory descriptor and every file is reached relative
to it:

* a folder is opened with ``O_DIRECTORY | O_NOFOLLOW``: the configured folder itself
  and every folder the package creates under it must not be a symbolic link (the
  operator's own path above it, ``/srv`` or a mount point, is taken as given);
  folders the package creates are mode 0700;
* a file is read with ``O_NOFOLLOW`` and must be a regular file (``fstat`` after the
  open, so nothing can be swapped in between);
* a file is written atomically: a temporary name in the same folder, created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (a planted name makes the open fail, it is never
  followed), mode 0600, written, flushed, ``fsync``-ed, renamed over the final name
  (``rename`` replaces a planted link, it does not write through it), and the folder
  ``fsync``-ed; on any failure (a full disk included) the temporary is removed, so
  a file holding personal data is complete or absent.

:func:`private_file` is the path-based form (a context manager yielding the open
file) for code that writes one file at a time. Spreadsheet cells are made safe by
:mod:`cpf_deposit.spreadsheet`.

Stdlib only. Linux and macOS (``dir_fd`` support); nothing here logs file content.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cpf_deposit import errors

FILE_MODE = 0o600
DIR_MODE = 0o700
TEMP_SUFFIX = ".part"
COPY_CHUNK = 1 << 20

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
_NOFOLLOW = os.O_NOFOLLOW
# O_NONBLOCK: opening a FIFO planted under a file's name must not hang (it is then
# refused as not a regular file); it changes nothing for a regular file.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
_TEMP = re.compile(r"^\.(?P<name>.+?)(?:\.[0-9a-f]{8})?" + re.escape(TEMP_SUFFIX) + "$")


class UnsafePathError(errors.ConfigError):
    """A folder or file of the package is a symbolic link, or not a regular folder or
    file: refused, never followed (terminal until someone looks at who planted it)."""


def _unsafe(path: str | os.PathLike[str], what: str) -> UnsafePathError:
    return UnsafePathError(f"{path}: {what}, refused (see docs/security.md)")


# --------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------


class Folder:
    """A folder held by its descriptor; every operation is relative to it.

    Use as a context manager (or call :meth:`close`). ``path`` is for messages only.
    """

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = path

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> Folder:
        """Open ``path`` as a folder, creating the missing ones (mode 0700).

        The folder itself must not be a symbolic link; neither may any folder created
        here. Existing folders above it are the operator's and are taken as they are.
        """
        path = Path(os.path.abspath(path))
        missing: list[str] = []
        top = path
        while not os.path.lexists(top):
            if not create:
                raise FileNotFoundError(2, "No such file or directory", str(path))
            if top.parent == top:
                break
            missing.append(top.name)
            top = top.parent
        if not missing:
            return cls(_open_dir(str(path), path, nofollow=True), path)
        fd = _open_dir(str(top), top, nofollow=False)
        folder = cls(fd, top)
        try:
            for name in reversed(missing):
                child = folder.sub(name, create=True)
                folder.close()
                folder = child
        except BaseException:
            folder.close()
            raise
        return folder

    def sub(self, name: str, *, create: bool = True) -> Folder:
        """A folder inside this one (created 0700 when missing); never a symbolic link."""
        _check_name(name)
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, DIR_MODE, dir_fd=self.fd)
        path = self.path / name
        return Folder(_open_dir(name, path, nofollow=True, dir_fd=self.fd), path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not leak descriptors
        with contextlib.suppress(Exception):
            self.close()

    def fsync(self) -> None:
        with contextlib.suppress(OSError):  # some file systems refuse to fsync a folder
            os.fsync(self.fd)

    # -- looking ---------------------------------------------------------------------------

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (a link is not followed); None when absent."""
        _check_name(name)
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        """Any entry under that name (a dangling link too)."""
        return self.lstat(name) is not None

    def is_file(self, name: str) -> bool:
        st = self.lstat(name)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_link(self, name: str) -> bool:
        st = self.lstat(name)
        return st is not None and stat.S_ISLNK(st.st_mode)

    def is_dir(self, name: str) -> bool:
        st = self.lstat(name)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def names(self, *, links: bool = False, hidden: bool = True) -> list[str]:
        """Regular files of the folder, sorted (``links``: symbolic links too)."""
        out = []
        with os.scandir(self.fd) as it:
            for entry in it:
                if not hidden and entry.name.startswith("."):
                    continue
                if entry.is_file(follow_symlinks=False) or (links and entry.is_symlink()):
                    out.append(entry.name)
        return sorted(out)

    def folders(self) -> list[str]:
        """Sub-folders (never a link to one), sorted."""
        with os.scandir(self.fd) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))

    # -- reading ---------------------------------------------------------------------------

    def open_read(self, name: str) -> IO[bytes]:
        """A regular file of this folder, for reading; a link or a FIFO is refused."""
        _check_name(name)
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise _refusal(exc, self.path / name) from None
        return _regular(fd, self.path / name)

    def read_bytes(self, name: str) -> bytes:
        with self.open_read(name) as fh:
            return fh.read()

    def read_text(self, name: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(name).decode(encoding)

    # -- writing ---------------------------------------------------------------------------

    def atomic(self, name: str, *, file_mode: int = FILE_MODE) -> AtomicFile:
        """An :class:`AtomicFile` for ``name`` (binary); commit it, or use it in ``with``."""
        return AtomicFile(self, name, file_mode=file_mode)

    @contextlib.contextmanager
    def private_file(self, name: str, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
        """``open()``-like writing of ``name``, atomically, mode 0600: text modes take
        ``encoding``, ``newline``, ``errors`` like :func:`open`."""
        if any(c in mode for c in "ra+x"):
            raise ValueError(f"private_file writes only: mode {mode!r}")
        with self.atomic(name) as raw:
            if "b" in mode:
                yield raw
            else:
                text = io.TextIOWrapper(raw, write_through=True, **_text_args(kwargs))
                try:
                    yield text
                    text.flush()
                finally:
                    text.detach()

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.atomic(name) as fh:
            fh.write(data)

    def write_text(self, name: str, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(name, text.encode(encoding))

    def copy_in(self, src: IO[bytes], name: str, *, max_bytes: int | None = None) -> int:
        """Stream ``src`` into ``name`` atomically; :class:`FileTooLarge` past ``max_bytes``."""
        copied = 0
        with self.atomic(name) as out:
            while chunk := src.read(COPY_CHUNK):
                copied += len(chunk)
                if max_bytes is not None and copied > max_bytes:
                    raise FileTooLarge(max_bytes)
                out.write(chunk)
        return copied

    def append_line(self, name: str, line: str) -> None:
        """Append one line (an index), created 0600, flushed to disk."""
        _check_name(name)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(name, flags, FILE_MODE, dir_fd=self.fd)
        except OSError as exc:
            raise _refusal(exc, self.path / name) from None
        with _regular(fd, self.path / name, "ab") as fh:
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An exclusive ``flock`` on ``name`` (created 0600), for one process at a time."""
        import fcntl

        _check_name(name)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | _CLOEXEC
        try:
            fd = os.open(name, flags, FILE_MODE, dir_fd=self.fd)
        except OSError as exc:
            raise _refusal(exc, self.path / name) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- moving, removing -----------------------------------------------------------------

    def move_to(self, name: str, dest: Folder, new_name: str | None = None) -> None:
        """Rename an entry into ``dest`` (same file system), replacing what is there.

        A symbolic link is moved as a link (``rename`` never follows it).
        """
        _check_name(name)
        target = new_name or name
        _check_name(target)
        os.replace(name, target, src_dir_fd=self.fd, dst_dir_fd=dest.fd)
        dest.fsync()
        if dest.fd != self.fd:
            self.fsync()

    def unlink(self, name: str, *, missing_ok: bool = True) -> bool:
        """Remove a file or a link (never a folder); True when something was removed."""
        _check_name(name)
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            if not missing_ok:
                raise
            return False
        return True


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafePathError(f"{name!r}: not a plain file name, refused")


def _open_dir(target: str, path: Path, *, nofollow: bool, dir_fd: int | None = None) -> int:
    flags = _DIR_FLAGS | (_NOFOLLOW if nofollow else 0)
    try:
        return os.open(target, flags, dir_fd=dir_fd)
    except OSError as exc:
        # O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR: tell a link from a file.
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.stat(target, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise _unsafe(path, "symbolic link") from None
        raise _refusal(exc, path, folder=True) from None


def _refusal(exc: OSError, path: Path, *, folder: bool = False) -> OSError | UnsafePathError:
    import errno

    if exc.errno == errno.ELOOP:
        return _unsafe(path, "symbolic link")
    if folder and exc.errno == errno.ENOTDIR:
        return _unsafe(path, "not a folder")
    if exc.errno == errno.ENXIO:  # a FIFO with no writer, opened non-blocking
        return _unsafe(path, "not a regular file")
    exc.filename = str(path)
    return exc


def _regular(fd: int, path: Path, mode: str = "rb") -> IO[bytes]:
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _unsafe(path, "not a regular file")
        if "r" in mode:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, mode)


def _text_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = set(kwargs) - {"encoding", "newline", "errors"}
    if unknown:
        raise TypeError(f"private_file: unexpected argument(s) {', '.join(sorted(unknown))}")
    return {**kwargs, "encoding": kwargs.get("encoding") or "utf-8"}


class FileTooLarge(errors.DataError, ValueError):
    """A copy went past its size cap (the copy is removed)."""

    def __init__(self, max_bytes: int):
        super().__init__(f"more than {max_bytes:,} bytes".replace(",", " "))
        self.max_bytes = max_bytes


# --------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------


def temp_name(name: str) -> str:
    """A fresh hidden temporary name for ``name``: ``.<name>.<8 hex>.part``."""
    return f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def temp_owner(name: str) -> str | None:
    """The final name a temporary belongs to (also the older ``.<name>.part``), or None."""
    m = _TEMP.match(name)
    return m["name"] if m else None


class AtomicFile:
    """A file written under a temporary name and renamed over ``name`` when complete.

    ``with folder.atomic(name) as fh: fh.write(...)`` gives the open binary file,
    commits on success and removes the temporary on any exception; streaming writers
    use ``af.fh``, then :meth:`commit` or :meth:`abort` by hand.
    """

    def __init__(self, folder: Folder, name: str, *, file_mode: int = FILE_MODE):
        _check_name(name)
        self.folder, self.name = folder, name
        self.tmp = temp_name(name)
        try:
            fd = os.open(self.tmp, _CREATE_FLAGS, file_mode, dir_fd=folder.fd)
        except OSError as exc:
            raise _refusal(exc, folder.path / self.tmp) from None
        try:
            os.fchmod(fd, file_mode)  # the umask can only have narrowed it: be exact
            self.fh: IO[bytes] = os.fdopen(fd, "wb", buffering=COPY_CHUNK)
        except BaseException:
            os.close(fd)
            self._remove_tmp()
            raise
        self.done = False

    def commit(self) -> Path:
        """Flush, fsync, rename over the final name, fsync the folder."""
        if self.done:
            return self.folder.path / self.name
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            fd = self.folder.fd
            os.replace(self.tmp, self.name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            self.abort()
            raise
        self.done = True
        self.folder.fsync()
        return self.folder.path / self.name

    def abort(self) -> None:
        """Drop the temporary (never raises: it runs while another error is on its way)."""
        if self.done:
            return
        self.done = True
        if not self.fh.closed:
            fd = self.fh.fileno()
            try:
                self.fh.close()  # flushes: may fail again on a full disk
            except (OSError, ValueError):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.tmp, dir_fd=self.folder.fd)

    def __enter__(self) -> IO[bytes]:
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


# --------------------------------------------------------------------------------------
# Path-based helpers
# --------------------------------------------------------------------------------------


def open_folder(path: str | os.PathLike[str], *, create: bool = True) -> Folder:
    """:meth:`Folder.open`: the folder by descriptor (created 0700 when missing)."""
    return Folder.open(path, create=create)


def private_dir(path: str | os.PathLike[str], *, narrow: bool = False) -> Path:
    """Make sure ``path`` is a folder, not a link (created 0700 when missing; an existing
    one set to 0700 too with ``narrow``, for folders that are the package's own)."""
    with Folder.open(path) as folder:
        if narrow:
            os.fchmod(folder.fd, DIR_MODE)
        return Path(path)


@contextlib.contextmanager
def private_file(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any):
    """Write ``path`` atomically with mode 0600: ``with private_file(p, "w",
    encoding="utf-8") as fh``. The folder is created (0700) when missing; a link
    planted under the name is replaced, never followed; nothing is left on failure."""
    path = Path(path)
    with Folder.open(path.parent) as folder, folder.private_file(path.name, mode, **kwargs) as fh:
        yield fh


def write_private(path: str | os.PathLike[str], data: bytes | str, encoding: str = "utf-8"):
    """Write ``data`` to ``path`` atomically, mode 0600."""
    path = Path(path)
    raw = data.encode(encoding) if isinstance(data, str) else data
    with Folder.open(path.parent) as folder:
        folder.write_bytes(path.name, raw)


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open ``path`` for reading: a regular file, not a link (its folder is followed)."""
    path = Path(path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise _refusal(exc, path) from None
    return _regular(fd, path)


def ensure_private_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty with mode 0600 if missing, else narrow it to 0600; its folder
    is created 0700 when missing. A link or a non-regular file is refused (the SQLite
    ledger is created this way, so SQLite's journal files inherit 0600)."""
    path = Path(path)
    with Folder.open(path.parent) as folder:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC
        try:
            fd = os.open(path.name, flags, FILE_MODE, dir_fd=folder.fd)
        except OSError as exc:
            raise _refusal(exc, path) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise _unsafe(path, "not a regular file")
            if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.geteuid():
                os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~0o077)
        finally:
            os.close(fd)


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "AtomicFile",
    "FileTooLarge",
    "Folder",
    "UnsafePathError",
    "ensure_private_file",
    "open_folder",
    "open_regular",
    "private_dir",
    "private_file",
    "temp_name",
    "temp_owner",
    "write_private",
]
