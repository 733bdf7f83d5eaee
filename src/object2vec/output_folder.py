"""The folder ``object2vec train`` writes: checked before training, locked while it runs, and
cleaned of nothing but the files this run wrote.

Before the first step, :meth:`OutputFolder.claim` refuses

* ``-o ''``, ``-o .`` or a folder that holds the current one: a model gets a folder of its own;
* a folder that holds anything but an earlier object2vec model or an unfinished run of one,
  unless ``--overwrite`` (the model is then written beside those files, which are kept);
* an existing model, unless ``--overwrite``; an unfinished run's checkpoint, unless ``--resume``
  (continue it) or ``--overwrite`` (start over);
* a folder (or checkpoint folder) that cannot be written, or whose disk lacks room for the model
  and two checkpoints (the old one stays until the new one is complete);
* a folder another training holds: an exclusive ``flock`` on the folder itself is held until the
  run ends (the kernel releases it if the process dies, so a crash never leaves a stale lock).

After the model is written, :meth:`OutputFolder.finish` removes only the checkpoint this run wrote
(and the ``checkpoints`` folder if nothing else is in it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Object2VecError
from .files import format_bytes, free_bytes

MODEL_FILES = ("config.json", "model.safetensors", "metrics.json", "auxiliary")
CHECKPOINTS, CHECKPOINT = "checkpoints", "latest.pt"
_OUR_TEMPORARY = re.compile(r"^\.(config\.json|model\.safetensors|metrics\.json|latest\.pt)\..*\.tmp$|^\.object2vec-write-test\.")


class OutputError(Object2VecError):
    """The output folder cannot take this run's model (it is not ours, in use, or not writable)."""


@dataclass(frozen=True)
class Contents:
    """What a folder holds, as far as object2vec is concerned."""

    model: bool  # config.json of an earlier model
    checkpoint: bool  # checkpoints/latest.pt of an unfinished run
    foreign: list[str]  # everything else (shown in messages)

    @classmethod
    def of(cls, folder: Path) -> Contents:
        model = checkpoint = False
        foreign = []
        for entry in sorted(folder.iterdir()):
            if entry.name in MODEL_FILES or _OUR_TEMPORARY.match(entry.name):
                model |= entry.name == "config.json"
            elif entry.name == CHECKPOINTS and entry.is_dir():
                inside = [e.name for e in entry.iterdir()]
                checkpoint = CHECKPOINT in inside
                foreign += [f"{CHECKPOINTS}/{n}" for n in sorted(inside) if n != CHECKPOINT and not _OUR_TEMPORARY.match(n)]
            else:
                foreign.append(entry.name + ("/" if entry.is_dir() else ""))
        return cls(model, checkpoint, foreign)


@dataclass
class OutputFolder:
    """A claimed output folder: locked until :meth:`release`."""

    path: Path
    checkpoint_dir: Path | None
    created: list[Path] = field(default_factory=list)  # folders this run made (removed again if left empty)
    locks: list[int] = field(default_factory=list)

    @classmethod
    def claim(
        cls,
        output: Path,
        checkpoint_dir: Path | None,
        *,
        overwrite: bool = False,
        resume: bool = False,
        model_bytes: int = 0,
        checkpoint_bytes: int = 0,
    ) -> OutputFolder:
        """Check ``output`` (see the module docstring), lock it and return the claim.

        ``model_bytes`` and ``checkpoint_bytes`` are the expected sizes of the model and of one
        checkpoint, for the free-space check.
        """
        refuse_current_folder(output)
        if output.exists() and not output.is_dir():
            raise OutputError(f"{output}: is a file; expected a folder for the model (new, empty, or an earlier model's)")
        default_checkpoints = checkpoint_dir is not None and checkpoint_dir == output / CHECKPOINTS
        if output.is_dir():
            found = Contents.of(output)
            if found.foreign and not overwrite:
                listed = ", ".join(found.foreign[:5]) + (f" and {len(found.foreign) - 5} more" if len(found.foreign) > 5 else "")
                raise OutputError(
                    f"{output}: is not empty and holds files that are not an object2vec model ({listed}); write the model to a "
                    "new or empty folder, or pass --overwrite to write it beside them (they are kept)"
                )
            resuming = resume and checkpoint_dir is not None and (checkpoint_dir / CHECKPOINT).is_file()
            if found.model and not overwrite and not resuming:
                raise OutputError(f"{output}: holds a model already; pass --overwrite to replace it, or choose another folder")
            if found.checkpoint and default_checkpoints and not resume and not overwrite:
                raise OutputError(
                    f"{output / CHECKPOINTS / CHECKPOINT}: an unfinished run's checkpoint; pass --resume to continue it, "
                    "or --overwrite to start over"
                )
        claim = cls(output, checkpoint_dir)
        try:
            for folder in dict.fromkeys(f for f in (output, checkpoint_dir) if f is not None):
                claim._make(folder)
                claim._lock(folder)
                _check_writable(folder)
            claim._check_space(model_bytes, checkpoint_bytes)
        except BaseException:
            claim.release()
            raise
        return claim

    def _make(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{folder}: cannot be created ({_reason(e)})") from None
        self.created += reversed(missing)

    def _lock(self, folder: Path) -> None:
        """An exclusive lock on the folder itself: no lock file to leave behind or race on."""
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(
                f"{folder}: another object2vec training is writing to this folder (it holds its lock); "
                "wait for it to finish, or choose another folder"
            ) from None
        self.locks.append(fd)

    def _check_space(self, model_bytes: int, checkpoint_bytes: int) -> None:
        """Room for the model, and for two checkpoints (an old one stays until the new one is complete)."""
        needs: dict[int, tuple[Path, int]] = {}
        wanted = [(self.path, model_bytes)]
        if self.checkpoint_dir is not None:
            existing = self.checkpoint_dir / CHECKPOINT
            old = existing.stat().st_size if existing.is_file() else 0
            wanted.append((self.checkpoint_dir, max(2 * checkpoint_bytes - old, checkpoint_bytes)))
        for folder, size in wanted:
            device = folder.stat().st_dev
            seen, total = needs.get(device, (folder, 0))
            needs[device] = (seen, total + size)
        for folder, size in needs.values():
            free = free_bytes(folder)
            if size > free:
                raise OutputError(
                    f"{folder}: the disk has {format_bytes(free)} free, but the model and its checkpoints need about "
                    f"{format_bytes(size)}; free some space or write elsewhere (-o, --checkpoint-dir)"
                )

    def finish(self) -> None:
        """The model is written: remove the checkpoint this run kept in ``OUTPUT/checkpoints``, and
        that folder if it is then empty; nothing else."""
        if self.checkpoint_dir is None or self.checkpoint_dir != self.path / CHECKPOINTS:
            return
        (self.checkpoint_dir / CHECKPOINT).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: someone else's files, kept
            self.checkpoint_dir.rmdir()

    def release(self) -> None:
        """Unlock, and remove the folders this run created if it left them empty (a refused run
        leaves nothing behind)."""
        for fd in self.locks:
            os.close(fd)
        self.locks = []
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def refuse_current_folder(output: Path, what: str = "the model", example: str = "model/") -> None:
    """A run's folder is its own: never the current folder (``-o ''``, ``-o .``) or one that holds it."""
    here = Path.cwd().resolve()
    target = output.resolve()
    if str(output) in ("", ".") or target == here or target in here.parents:
        raise OutputError(
            f"--output {str(output)!r} is the current folder or one that holds it; name a folder of its own for "
            f"{what}, e.g. -o {example}"
        )


def _check_writable(folder: Path) -> None:
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".object2vec-write-test.")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise OutputError(f"{folder}: cannot be written ({_reason(e)}); choose a writable folder") from None


def _reason(e: OSError) -> str:
    if e.errno == errno.EROFS:
        return "read-only file system"
    return (e.strerror or str(e)).lower()
