"""Files this project writes: always atomically, and where its cache lives.

Every file is written through :func:`atomic_path` (a temporary name in the same folder, flushed to
disk, then ``os.replace``), so a crash, a full disk or a kill never leaves a half-written file under
a real name, and an existing file is either the old one or the new one. Folders written as a unit
(the binary data cache) go through :func:`atomic_folder`. Cache entries are keyed and checked by
:func:`content_digest`, a hash of the bytes themselves, never by names, sizes or times.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import mmap
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # xxHash's XXH3 reads ~25 GB/s; blake2b (the standard library's fastest) ~0.8 GB/s
    from xxhash import xxh3_128 as _hasher

    DIGEST = "xxh3_128"
except ImportError:  # pragma: no cover - xxhash is a dependency; this only keeps a bare install working
    from hashlib import blake2b as _hasher  # type: ignore[assignment]

    DIGEST = "blake2b"

_WINDOW = 64 << 20  # bytes of a file mapped at once while hashing (a multiple of mmap.ALLOCATIONGRANULARITY)


def cache_dir() -> Path:
    """Where parsed data files and compiled kernels are cached: ``$OBJECT2VEC_CACHE_DIR``, else
    ``~/.cache/object2vec``."""
    return Path(os.environ.get("OBJECT2VEC_CACHE_DIR") or Path.home() / ".cache" / "object2vec")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int | None = None, unnamed: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception the file
    written there is flushed to disk and renamed to ``path``; otherwise it is removed.

    The temporary file is a hidden ``.NAME.*.tmp`` (``np.save`` appends ``.npy`` to such a name: give
    it an open file). With ``unnamed=True`` (Linux) it has no name at
    all until it is complete (``O_TMPFILE``, published with ``linkat``), so even a SIGKILL mid-write
    leaves nothing behind; the yielded path is then ``/proc/self/fd/N``: write to it as it is (a
    writer that appends or reads an extension, like ``np.save`` or ``savefig``, must not get it).
    ``mode`` defaults to what ``open`` would give under the umask.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text(), [p.name for p in target.parent.iterdir()]
    ('hello', ['x.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _umask_mode() if mode is None else mode
    fd = _anonymous_file(path.parent, mode) if unnamed else None
    if fd is not None:
        try:
            yield Path(f"/proc/self/fd/{fd}")
            os.fsync(fd)
            _publish(fd, path)
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_AT_FDCWD, _AT_SYMLINK_FOLLOW = -100, 0x400


def _anonymous_file(folder: Path, mode: int) -> int | None:
    """An unnamed file in ``folder`` (Linux ``O_TMPFILE``), or None where that is not available."""
    if not hasattr(os, "O_TMPFILE") or not Path("/proc/self/fd").is_dir() or _linkat() is None:
        return None
    try:
        return os.open(folder, os.O_TMPFILE | os.O_RDWR, mode)
    except OSError:  # a file system without O_TMPFILE support
        return None


@functools.cache
def _linkat() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.linkat
    except (OSError, AttributeError):
        return None


def _publish(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` a hidden name beside ``path``, then rename it over ``path``."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{fd}.tmp"
    tmp.unlink(missing_ok=True)
    if _linkat()(_AT_FDCWD, f"/proc/self/fd/{fd}".encode(), _AT_FDCWD, os.fsencode(tmp), _AT_SYMLINK_FOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path, unnamed=True) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block ends without an exception it
    becomes ``path``; otherwise it is removed.

    ``path`` must not exist or be an empty folder, unless ``replace``: then a folder already there is
    first renamed out of the way and removed (a reader meanwhile finds either folder, or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        for child in tmp.iterdir():
            _fsync(child)
        if replace:
            remove_folder(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_folder(path: str | os.PathLike) -> None:
    """Remove a folder (if there is one) by first renaming it to a hidden name, so that no reader
    ever sees it half-deleted."""
    path = Path(path)
    aside = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def content_digest(path: str | os.PathLike) -> str:
    """A hash of a file's bytes (XXH3-128, or blake2b without xxhash), named by its algorithm.

    The file is memory-mapped a window at a time, so hashing a file in the page cache runs at memory
    speed (13 MB in about 0.7 ms with XXH3, where parsing it as JSON Lines takes 50 ms or more) and
    adds at most one window to the process's resident memory.

    >>> import tempfile
    >>> a, b = Path(tempfile.mkdtemp()) / "a", Path(tempfile.mkdtemp()) / "b"
    >>> _ = a.write_bytes(b"same"), b.write_bytes(b"same")
    >>> content_digest(a) == content_digest(b) != content_digest(__file__)
    True
    """
    hasher = _hasher()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        for offset in range(0, size, _WINDOW):  # an empty file has no window (and cannot be mapped)
            with mmap.mmap(fh.fileno(), min(_WINDOW, size - offset), offset=offset, access=mmap.ACCESS_READ) as view:
                hasher.update(view)
    return f"{DIGEST}:{hasher.hexdigest()}"


_AT_RENAME_EXCHANGE = 2


def replace_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the complete folder ``source`` at ``target``, replacing any folder there, in one step.

    On Linux the two are swapped atomically (``renameat2`` with ``RENAME_EXCHANGE``), so a reader
    of ``target`` sees the old folder or the new one, never a mix or nothing; the old one is then
    removed. Elsewhere the old folder is moved aside first, so for an instant there is none.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("old", "new"):
    ...     (root / name).mkdir(); _ = (root / name / "x.txt").write_text(name)
    >>> replace_folder(root / "new", root / "old")
    >>> (root / "old" / "x.txt").read_text(), sorted(p.name for p in root.iterdir())
    ('new', ['old'])
    """
    source, target = Path(source), Path(target)
    if not target.exists():
        os.replace(source, target)
        return
    exchange = _renameat2()
    if (
        exchange is not None
        and exchange(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _AT_RENAME_EXCHANGE) == 0
    ):
        shutil.rmtree(source)  # now the old folder
        return
    aside = target.parent / f".{target.name}.{os.getpid()}.old"
    os.replace(target, aside)
    os.replace(source, target)
    shutil.rmtree(aside, ignore_errors=True)


@functools.cache
def _renameat2() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
