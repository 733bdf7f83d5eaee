"""The compiled kernels' library: the C definitions agree with the one ctypes table, and a cached
library is loaded only from a private folder and only when it matches the hash recorded beside it."""

from __future__ import annotations

import ctypes
import fnmatch
import hashlib
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from object2vec.native import library


def _has_compiler() -> bool:
    try:
        library._compiler()
    except OSError:
        return False
    return True


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh cache folder, and a library loaded anew from it (the process's own is restored after)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("OBJECT2VEC_CACHE_DIR", str(folder))
    monkeypatch.delenv("OBJECT2VEC_KERNELS", raising=False)
    library.load.cache_clear()
    yield folder
    library.load.cache_clear()


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library built and loaded by :func:`library.load` in a cache of its own (the hash beside it)."""
    if not _has_compiler():
        pytest.skip("no C compiler here")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("OBJECT2VEC_CACHE_DIR", str(tmp_path_factory.mktemp("genuine")))
        m.delenv("OBJECT2VEC_KERNELS", raising=False)
        library.load.cache_clear()
        try:
            assert library.load() is not None
            return library.library_path()
        finally:
            library.load.cache_clear()


def seed(genuine: Path) -> Path:
    """Copy the genuine library and its hash into the current cache (no compile); its path there."""
    path = library.library_path()
    library.private_folder(path.parent)
    shutil.copy2(genuine, path)
    shutil.copy2(library.digest_path(genuine), library.digest_path(path))
    return path


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("object2vec") and r.levelno == logging.WARNING]


# --- the C source and the signature table ---------------------------------------------------------


def _c_type(text: str) -> str:
    """``"const  float*"`` -> ``"const float *"``: how the table spells a type."""
    return " ".join(text.replace("*", " * ").split())


def c_definitions(source: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The exported (not ``static``) function definitions in C ``source``: name -> (result, parameter types)."""
    source = re.sub(r"/\*.*?\*/|//[^\n]*", " ", source, flags=re.S)
    source = re.sub(r"(?m)^[ \t]*#.*$", " ", source)
    found = {}
    for match in re.finditer(r"(?m)^([A-Za-z_][\w \t*]*?)\b([A-Za-z_]\w*)\s*\(([^()]*)\)\s*\{", source):
        result, name, parameters = match.groups()
        if "static" in result.split():
            continue
        types = []
        for parameter in parameters.split(","):
            typed = re.fullmatch(r"\s*(.+?)\b\w+\s*", parameter, flags=re.S)  # drop the parameter's name
            assert typed, f"{name}: cannot read the parameter {parameter!r}"
            types.append(_c_type(typed.group(1)))
        found[name] = (_c_type(result), tuple(types))
    return found


def _all_definitions() -> dict[str, tuple[str, tuple[str, ...]]]:
    found = {}
    for path in sorted(library.SOURCE_FOLDER.glob("*.c")):
        found.update(c_definitions(path.read_text()))
    return found


def test_every_exported_c_function_matches_the_signature_table():
    definitions = _all_definitions()
    assert sorted(definitions) == sorted(library.SIGNATURES)
    for name, (result, parameters) in library.SIGNATURES.items():
        assert definitions[name][0] == result, name
        assert len(definitions[name][1]) == len(parameters), f"{name}: {len(definitions[name][1])} parameters in C"
        assert definitions[name][1] == parameters, name


def test_the_signature_check_sees_a_missing_parameter_and_a_changed_type():
    source = (library.SOURCE_FOLDER / "optimizers.c").read_text()
    assert c_definitions(source)["sgd_rows"] == library.SIGNATURES["sgd_rows"]
    dropped = source.replace("float lr,\n              float weight_decay)", "float lr)")
    retyped = source.replace(
        "void sgd_rows(float *w, const float *grad, const int64_t *rows,",
        "void sgd_rows(float *w, const float *grad, const int32_t *rows,",
    )
    assert dropped != source and retyped != source
    assert len(c_definitions(dropped)["sgd_rows"][1]) == len(library.SIGNATURES["sgd_rows"][1]) - 1
    assert c_definitions(retyped)["sgd_rows"] != library.SIGNATURES["sgd_rows"]
    assert "helper" not in c_definitions("static inline int helper(int x) {\n  return x;\n}\n")


def test_every_table_type_has_a_ctypes_type():
    for result, parameters in library.SIGNATURES.values():
        for c_type in (result, *parameters):
            library.ctypes_type(c_type)  # raises KeyError for a type the table cannot pass
    assert library.ctypes_type("const char *") is ctypes.c_char_p
    with pytest.raises(KeyError, match="long double"):
        library.ctypes_type("long double")


def test_the_built_library_exports_exactly_the_table_with_its_ctypes_signatures(cache, genuine):
    seed(genuine)
    loaded = library.load()
    assert loaded is not None
    for name, (result, parameters) in library.SIGNATURES.items():
        function = getattr(loaded, name)
        assert function.restype is library.ctypes_type(result)
        assert function.argtypes == [library.ctypes_type(p) for p in parameters]
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", "-D", "--defined-only", str(genuine)], capture_output=True, text=True).stdout
        exported = {line.split()[-1] for line in symbols.splitlines() if line.split()[1:2] == ["T"]}
        assert exported == set(library.SIGNATURES)


def test_the_cache_name_follows_the_source_the_flags_and_the_cpu(cache, monkeypatch):
    first = library.library_path()
    assert first == library.library_path()
    sources = library.sources()
    monkeypatch.setattr(library, "sources", lambda: {**sources, "pairs.c": sources["pairs.c"] + b"\n"})
    edited = library.library_path()
    monkeypatch.setattr(library, "FLAGS", [*library.FLAGS, "-g"])
    flagged = library.library_path()
    monkeypatch.setattr(library, "_cpu_identity", lambda: "another cpu")
    elsewhere = library.library_path()
    assert len({first, edited, flagged, elsewhere}) == 4
    assert first.parent == cache / "kernels"


def test_the_c_source_ships_as_package_data():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["object2vec.native"]
    names = [f"csrc/{name}" for name in library.sources()]
    assert names and all(any(fnmatch.fnmatch(name, p) for p in patterns) for name in names)


# --- the cache folder and the hash ------------------------------------------------------------------


def test_the_kernels_folder_is_private_and_the_hash_is_recorded(genuine):
    assert stat.S_IMODE(genuine.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(genuine.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(library.digest_path(genuine).stat().st_mode) & 0o077 == 0
    assert library.recorded_digest(genuine) == hashlib.sha256(genuine.read_bytes()).hexdigest()
    assert sorted(p.name for p in genuine.parent.iterdir()) == [genuine.name, genuine.name + ".sha256"]  # no temp file left


def test_a_malformed_or_missing_hash_counts_as_none(tmp_path):
    path = tmp_path / "object2vec-x.so"
    assert library.recorded_digest(path) is None
    library.digest_path(path).write_text("not a hash\n")
    assert library.recorded_digest(path) is None
    library.digest_path(path).write_text("AB" * 32 + "\n")  # upper case is not what build() writes
    assert library.recorded_digest(path) is None
    library.digest_path(path).write_text("ab" * 32 + "\n")
    assert library.recorded_digest(path) == "ab" * 32


LOAD_AND_RUN = """
import ctypes, logging
logging.basicConfig()
from object2vec.native import library
kernels = library.load()
w, g, rows = (ctypes.c_float * 2)(1, 1), (ctypes.c_float * 2)(1, 1), (ctypes.c_int64 * 1)(0)
kernels.sgd_rows(ctypes.addressof(w), ctypes.addressof(g), ctypes.addressof(rows), 1, 2, 0.5, 0.0)
print(list(w))
"""


def test_a_truncated_library_is_rebuilt_instead_of_loaded(cache, genuine):
    """Loaded as it was, a truncated library kills the process with SIGBUS (exit 135) in every later run."""
    path = seed(genuine)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    run = subprocess.run([sys.executable, "-c", LOAD_AND_RUN], capture_output=True, text=True, env=os.environ, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[0.5, 0.5]"
    assert "do not match the SHA-256 recorded" in run.stderr
    assert hashlib.sha256(path.read_bytes()).hexdigest() == library.recorded_digest(path)
    assert path.stat().st_size == size


@pytest.mark.parametrize("recorded", ["no hash", "the genuine library's hash"])
def test_a_planted_library_is_never_loaded_and_is_replaced(cache, genuine, tmp_path, caplog, recorded):
    """dlopen runs a library's constructors: a file that does not hash to the recorded value is never opened."""
    marker = tmp_path / "constructor-ran"
    planted_c = tmp_path / "planted.c"
    planted_c.write_text(
        "#include <stdio.h>\n"
        f'__attribute__((constructor)) static void plant(void) {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
        "void adam_rows(void) {}\n"
    )
    path = seed(genuine)
    if recorded == "no hash":
        library.digest_path(path).unlink()
    subprocess.run([library._compiler(), "-shared", "-fPIC", str(planted_c), "-o", str(path)], check=True)
    planted = path.read_bytes()

    with caplog.at_level(logging.INFO, logger="object2vec"):
        loaded = library.load()
    assert not marker.exists()  # the planted constructor never ran
    assert loaded is not None
    assert path.read_bytes() != planted
    assert library.recorded_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    warnings = warnings_in(caplog)
    assert len(warnings) == 1 and "do not match the SHA-256 recorded" in warnings[0]


def _make_open_to_others(cache: Path, which: str) -> Path:
    kernels = cache / "kernels"
    kernels.mkdir(parents=True)
    folder = {"kernels folder, 777": kernels, "kernels folder, group-writable": kernels, "cache folder, 777": cache}[which]
    folder.chmod(0o770 if "group" in which else 0o777)
    return folder


@pytest.mark.parametrize("which", ["kernels folder, 777", "kernels folder, group-writable", "cache folder, 777"])
def test_a_cache_folder_others_can_write_is_refused_with_one_warning(cache, caplog, which):
    folder = _make_open_to_others(cache, which)
    with caplog.at_level(logging.INFO, logger="object2vec"):
        assert library.load() is None
        assert library.load() is None
    warnings = warnings_in(caplog)
    assert len(warnings) == 1
    assert f"{folder} is writable by" in warnings[0] and "compiled kernels unavailable" in warnings[0]
    assert list((cache / "kernels").iterdir()) == []  # nothing built or loaded there


def test_a_kernels_folder_of_another_user_is_refused(cache, monkeypatch, caplog):
    if not hasattr(os, "getuid"):
        pytest.skip("no user ids on this platform")
    (cache / "kernels").mkdir(parents=True, mode=0o700)
    monkeypatch.setattr(os, "getuid", lambda: os.stat(cache).st_uid + 1)
    with caplog.at_level(logging.INFO, logger="object2vec"):
        assert library.load() is None
    warnings = warnings_in(caplog)
    assert len(warnings) == 1 and "belongs to another user" in warnings[0]


def test_a_shared_cache_folder_with_the_sticky_bit_is_accepted(cache, genuine):
    """Like /tmp: anyone may write there, but only the owner may rename or remove the kernels folder."""
    cache.mkdir()
    cache.chmod(0o1777)
    seed(genuine)
    assert library.load() is not None


@pytest.mark.parametrize("off", ["OBJECT2VEC_KERNELS=0", "no compiler"])
def test_falling_back_logs_exactly_one_warning(cache, monkeypatch, caplog, off):
    if off == "no compiler":
        monkeypatch.setenv("CC", str(cache / "no-such-compiler"))
    else:
        monkeypatch.setenv("OBJECT2VEC_KERNELS", "0")
    with caplog.at_level(logging.INFO, logger="object2vec"):
        for _ in range(3):
            assert library.load() is None
    warnings = warnings_in(caplog)
    assert len(warnings) == 1 and "compiled kernels unavailable" in warnings[0]
    assert ("OBJECT2VEC_KERNELS=0" if off != "no compiler" else "no-such-compiler") in warnings[0]
