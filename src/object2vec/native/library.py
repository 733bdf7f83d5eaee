"""The compiled kernels' shared library: its C source (``csrc/``), built once per CPU and source
version into the cache, checked before every load.

A library in the cache is machine code this process is about to run, so it is never loaded on trust:

* **A private folder.** ``$OBJECT2VEC_CACHE_DIR/kernels`` is created 0700. A kernels folder that
  another user owns or that others can write, or a cache folder that anyone can write (without the
  sticky bit of ``/tmp``), is refused: whoever can write there could plant a library and its hash.
* **A hash beside the library.** The compiler writes to a temporary name (:func:`atomic_path`); the
  SHA-256 of what it wrote goes to ``<library>.sha256`` (atomically too), then the library is
  renamed into place. A crash at any point leaves a missing file or a mismatch, never a half file
  under the real name.
* **Verified, then loaded from the same descriptor.** The library is opened once, must be a regular
  file of this user, and is hashed; only when the hash matches is it loaded, through that descriptor
  (``/proc/self/fd/N`` where it exists), so what was checked is what runs. A truncated file (which
  ``dlopen`` would map and then fault on: SIGBUS, exit 135, in every later run) or a planted one
  (whose constructor ``dlopen`` would run) is never loaded: it is rebuilt once and replaced.
* **One warning when the kernels are off.** No compiler, ``OBJECT2VEC_KERNELS=0``, a refused folder
  or a failed build log one WARNING and return ``None``; callers then take their PyTorch, pyarrow
  and Python paths (slower, the same results).

The exported C functions and their types are listed once, in :data:`SIGNATURES`; the ctypes
declarations are derived from it, and ``tests/test_native.py`` checks it against the C definitions.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
from functools import cache
from pathlib import Path

from ..files import atomic_path, cache_dir

logger = logging.getLogger(__name__)

SOURCE_FOLDER = Path(__file__).parent / "csrc"

# Every exported function, with its result and parameter types as its C definition spells them
# (``const`` and pointee types included, so a swapped or missing parameter shows in the check).
SIGNATURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "adam_rows": (
        "void",
        ("float *", "float *", "float *", "const float *", "const int64_t *", "int64_t", "int64_t",
         "float", "float", "float", "float", "float", "float", "float"),
    ),
    "adagrad_rows": (
        "void",
        ("float *", "float *", "const float *", "const int64_t *", "int64_t", "int64_t", "float", "float", "float"),
    ),
    "sgd_rows": ("void", ("float *", "const float *", "const int64_t *", "int64_t", "int64_t", "float", "float")),
    "parse_pairs": (
        "int64_t",
        ("const char *", "int64_t", "int64_t *", "int32_t *", "int64_t *", "int32_t *", "int64_t *", "double *",
         "int64_t", "int64_t *", "int64_t", "double *", "double *"),
    ),
    "expand_features": (
        "int64_t",
        ("const uint32_t *", "const int64_t *", "const int64_t *", "const int64_t *", "int64_t", "int64_t", "int64_t",
         "int64_t", "int64_t", "int64_t", "int64_t", "uint32_t *", "int64_t *", "int64_t *", "int64_t"),
    ),
    "document_frequencies": ("void", ("const int64_t *", "const int64_t *", "int64_t", "int64_t", "int64_t *", "int64_t *")),
    "relu_max_forward": (
        "void",
        ("const uint16_t *", "const uint8_t *", "uint16_t *", "float *", "float *", "int64_t", "int64_t", "int64_t"),
    ),
    "relu_max_backward": (
        "void",
        ("const uint16_t *", "const float *", "const float *", "const float *", "const uint16_t *", "uint16_t *",
         "int64_t", "int64_t", "int64_t"),
    ),
    "bag_mean_backward": (
        "int",
        ("const float *", "const int64_t *", "const int64_t *", "float *", "int64_t", "int64_t", "int64_t"),
    ),
    "bag_weighted_backward": (
        "int",
        ("const float *", "const int64_t *", "const int64_t *", "const float *", "float *", "int64_t", "int64_t", "int64_t"),
    ),
    "distinct_rows": (
        "int64_t", ("const int64_t *", "int64_t", "int64_t", "uint64_t *", "int64_t *", "int64_t *", "int64_t *"),
    ),
    "lstm_forward_step": (
        "void",
        ("const uint16_t *", "const uint16_t *", "const float *", "const int64_t *", "const float *", "float *",
         "uint16_t *", "const uint16_t *", "uint16_t *", "uint16_t *", "float *", "float *", "int32_t *",
         "int64_t", "int64_t", "int64_t", "int64_t"),
    ),
    "lstm_backward_step": (
        "void",
        ("const uint16_t *", "const float *", "const float *", "const float *", "const float *", "const int32_t *",
         "const uint16_t *", "float *", "uint16_t *", "uint16_t *", "float *", "int64_t", "const int64_t *",
         "int64_t", "int64_t", "int64_t", "int64_t"),
    ),
}  # fmt: skip

_CTYPES = {
    "void": None,
    "int": ctypes.c_int,
    "int64_t": ctypes.c_int64,
    "float": ctypes.c_float,
    "double": ctypes.c_double,
    "const char *": ctypes.c_char_p,  # parse_pairs reads a bytes object in place
}


def ctypes_type(c_type: str) -> type | None:
    """The ctypes type passing a C parameter or result of type ``c_type``; other pointers are addresses.

    >>> ctypes_type("const float *") is ctypes.c_void_p, ctypes_type("int64_t") is ctypes.c_int64
    (True, True)
    """
    if c_type in _CTYPES:
        return _CTYPES[c_type]
    if c_type.endswith("*"):
        return ctypes.c_void_p
    raise KeyError(f"no ctypes type for the C type {c_type!r}; add it to object2vec.native.library._CTYPES")


# -fno-math-errno lets sqrtf vectorise; no -ffast-math: the arithmetic stays IEEE, as torch's.
# (-fno-trapping-math, which would let floorf vectorise, made hcnn's relu-max loops 40% slower.)
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC"]
OPENMP = "-fopenmp"  # dropped if the compiler has no OpenMP (one thread then), then -march=native too
_COMPILE_SECONDS = 120


def sources() -> dict[str, bytes]:
    """The C files (``csrc/*.c`` and the headers they include), by name."""
    return {path.name: path.read_bytes() for path in sorted(SOURCE_FOLDER.iterdir()) if path.suffix in (".c", ".h")}


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(lines)))
    except OSError:
        return platform.processor() or platform.machine()


def library_path() -> Path:
    """Where this source, these flags and this CPU's library is cached (the name is their hash)."""
    key = hashlib.sha256()
    for name, text in sources().items():
        key.update(name.encode() + b"\0" + text + b"\0")
    key.update("\0".join([*FLAGS, OPENMP, _cpu_identity(), platform.machine()]).encode())
    return cache_dir() / "kernels" / f"object2vec-{key.hexdigest()[:16]}.so"


def digest_path(library: Path) -> Path:
    """The file beside ``library`` holding its SHA-256 (hex)."""
    return library.with_name(library.name + ".sha256")


def _is_mine(info: os.stat_result) -> bool:
    """Whether this user owns the file ``info`` describes (always, where the platform has no user ids)."""
    return not hasattr(os, "getuid") or info.st_uid == os.getuid()


def _refuse_unless_private(folder: Path) -> None:
    """Raise ``OSError`` (the message says what to do) unless only this user can write into ``folder``
    and nobody else can swap it: its parent may be writable by everyone only under the sticky bit."""
    parent = os.stat(folder.parent)
    if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
        raise OSError(
            f"the cache folder {folder.parent} is writable by every user (mode {stat.S_IMODE(parent.st_mode):o}); "
            f"make it private (chmod 700 {folder.parent}) or set OBJECT2VEC_CACHE_DIR to a private folder"
        )
    info = os.stat(folder)
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a folder"
    elif not _is_mine(info):
        problem = f"belongs to another user (uid {info.st_uid})"
    elif mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by other users (mode {mode:o})"
    else:
        return
    raise OSError(
        f"the kernel cache folder {folder} {problem}; remove it (object2vec recreates it private, mode 700) "
        "or set OBJECT2VEC_CACHE_DIR to a private folder"
    )


def private_folder(folder: Path) -> Path:
    """``folder``, created with mode 0700 where missing, checked private (:func:`_refuse_unless_private`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)  # an existing folder keeps its mode, and must pass the check
    _refuse_unless_private(folder)
    return folder


def _open_own_file(path: Path) -> int | None:
    """A read descriptor on ``path`` if it is a regular file of this user (no symlink followed), else ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and _is_mine(info):
        return fd
    os.close(fd)
    return None


def recorded_digest(library: Path) -> str | None:
    """The SHA-256 recorded beside ``library``, or ``None`` when missing, foreign or malformed."""
    fd = _open_own_file(digest_path(library))
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        text = f.read(200).decode("ascii", "replace").strip()
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


_held: list[int] = []  # descriptors of loaded libraries, kept open: /proc/self/fd/N then names one file for good


def load_verified(library: Path, digest: str) -> ctypes.CDLL | None:
    """``library`` loaded when it is this user's regular file and its SHA-256 is ``digest``; else
    ``None``, and the file was never handed to ``dlopen``.

    The bytes hashed and the code loaded come from one descriptor, so a file swapped between the
    check and the load cannot run. The descriptor stays open: glibc knows a library by the name it
    was opened with, and a later ``/proc/self/fd/N`` naming another file must not match it.
    """
    fd = _open_own_file(library)
    if fd is None:
        return None
    loaded = None
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            matches = hashlib.file_digest(f, "sha256").hexdigest() == digest
        if matches:
            by_descriptor = f"/proc/self/fd/{fd}"
            loaded = ctypes.CDLL(by_descriptor if os.path.exists(by_descriptor) else str(library))
    finally:
        if loaded is None:
            os.close(fd)
        else:
            _held.append(fd)
    return loaded


def _compiler() -> str:
    """``$CC``, else ``cc``, ``gcc`` or ``clang``."""
    if os.environ.get("CC"):
        if shutil.which(os.environ["CC"]) is None:
            raise OSError(f"the C compiler CC={os.environ['CC']} was not found")
        return os.environ["CC"]
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise OSError("no C compiler found (cc, gcc or clang; or set CC)")
    return compiler


def build(library: Path) -> str:
    """Compile ``csrc/*.c`` into ``library`` and record its hash beside it; returns the hash.

    The compiler writes under a temporary name; the hash file is written (atomically) before the
    library is renamed into place, so a reader never finds the new library with no hash for it."""
    compiler = _compiler()
    files = [str(SOURCE_FOLDER / name) for name in sources() if name.endswith(".c")]
    portable = [flag for flag in FLAGS if flag != "-march=native"]
    with atomic_path(library, mode=0o700) as built:
        for flags in ([*FLAGS, OPENMP], FLAGS, portable):
            command = [compiler, *flags, *files, "-o", str(built), "-lm"]
            try:
                result = subprocess.run(command, capture_output=True, text=True, timeout=_COMPILE_SECONDS)
            except subprocess.TimeoutExpired as e:
                raise OSError(f"{compiler} took over {_COMPILE_SECONDS} s") from e
            if result.returncode == 0:
                break
        else:
            raise OSError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        with open(built, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        with atomic_path(digest_path(library), mode=0o600, unnamed=True) as tmp:
            tmp.write_text(digest + "\n")
    return digest


def _declare(library: ctypes.CDLL) -> None:
    """Give every exported function its ctypes signature from :data:`SIGNATURES`."""
    for name, (result, parameters) in SIGNATURES.items():
        try:
            function = getattr(library, name)
        except AttributeError as e:
            raise OSError(f"the compiled kernels lack {name}") from e
        function.restype = ctypes_type(result)
        function.argtypes = [ctypes_type(p) for p in parameters]


def _load_or_build() -> ctypes.CDLL:
    path = private_folder(cache_dir() / "kernels") / library_path().name
    if os.path.lexists(path):
        digest = recorded_digest(path)
        library = None if digest is None else load_verified(path, digest)
        if library is not None:
            return library
        logger.warning(
            "object2vec: the cached kernels %s do not match the SHA-256 recorded beside them, or none is "
            "(truncated, replaced or left by an interrupted build); rebuilding them instead of loading them",
            path,
        )
    digest = build(path)
    library = load_verified(path, digest)
    if library is None:
        raise OSError(f"{path} changed between its build and its load")
    return library


@cache
def load() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; ``None`` where they cannot be (the PyTorch path runs),
    with one WARNING saying why."""
    reason = None
    if os.environ.get("OBJECT2VEC_KERNELS", "1") == "0":
        reason = "OBJECT2VEC_KERNELS=0"
    else:
        try:
            library = _load_or_build()
            _declare(library)
            return library
        except OSError as e:  # no compiler, a refused or read-only cache, a foreign platform
            reason = str(e)
    logger.warning("object2vec: compiled kernels unavailable (%s); PyTorch, pyarrow and Python do their work, slower", reason)
    return None
