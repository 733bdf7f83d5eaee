"""What every ``object2vec`` command shares: the click group, and one clear line for a user's error.

Each command module registers its verbs on :data:`main` and imports only this module from ``cli``;
the heavy parts (torch, faiss, FastAPI) are imported inside the commands, so ``object2vec --help``
does not load them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import interrupts, reporting
from ..errors import Object2VecError

EXIT_USER_ERROR = 2
DEVICE_HELP = "auto (CUDA if available), cpu, cuda, cuda:N."


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors print one ``error:`` line (no traceback) and exit with status 2; SIGTERM and
    SIGINT print one line saying what was interrupted and exit with 128 + the signal's number."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with interrupts.handled():  # SIGTERM/SIGINT unwind through every finally: no temporary file is left
                result = fn(*args, **kwargs)
            if reporting.launched_by_torchrun():
                leave(0)  # a worker's Python shutdown can abort after a run that succeeded, too
            return result
        except interrupts.Interrupted as e:
            if reporting.is_main_process():
                click.echo(str(e), err=True)
            leave(e.exit_code)
        except Object2VecError as e:
            if reporting.is_main_process():  # under torchrun every rank fails alike; one message is enough
                click.echo(f"error: {e}", err=True)
            leave(EXIT_USER_ERROR)
        except OSError as e:
            click.echo(f"error: {e.filename or ''}: {e.strerror or e}", err=True)
            leave(EXIT_USER_ERROR)

    return wrapper


def leave(code: int) -> NoReturn:
    """Exit with ``code``; a ``torchrun`` worker leaves at once, without Python's shutdown.

    A Gloo worker's shutdown can abort the process ("terminate called without an active
    exception", SIGABRT: status 134 instead of 2 in 3 runs of 42 of
    ``test_a_checkpoint_that_cannot_be_written_mid_run_stops_both_ranks_with_one_message`` beside
    busy loops, none in 60 since; and once, on an idle machine, in a test worker that had trained,
    destroyed its process group and returned). Which object's teardown aborts was not traced. A
    command is done when this is called: files are written atomically, ``finally`` blocks have run
    and the error line, if any, is printed; only the streams need flushing.
    """
    if reporting.launched_by_torchrun():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


@contextlib.contextmanager
def notes() -> Iterator[None]:
    """Show warnings as one ``note:`` line each on stderr, not as Python's file:line warning format."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, UserWarning):
            click.echo(f"note: {w.message}", err=True)


def read_hyperparameters_file(path: Path) -> dict[str, Any]:
    """SageMaker's ``hyperparameters.json``: a JSON object of name -> value (strings, usually)."""
    try:
        values = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # UTF-8 (or -16/-32) JSON, as SageMaker writes it
        raise Object2VecError(f"{path}: is not valid JSON ({e}); expected an object of name -> value") from None
    if not isinstance(values, dict):
        raise Object2VecError(f"{path}: holds {type(values).__name__}; expected a JSON object of name -> value")
    return values


def parse_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``-p name=value`` options as a dict."""
    out = {}
    for item in pairs:
        if "=" not in item:
            raise Object2VecError(f"-p {item!r}: expected name=value, e.g. -p enc_dim=64")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def load_model(model_dir: Path, device: str) -> Any:
    """The trained :class:`~object2vec.estimator.Object2Vec` in ``model_dir`` (imports torch)."""
    from ..estimator import Object2Vec

    return Object2Vec.load(model_dir, device=device)


def fmt(value: Any) -> str:
    """A table cell: ``-`` for nothing, four decimals for a float."""
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="object2vec")
def main() -> None:
    """Object2Vec: embeddings of pairs, SageMaker-compatible, trained with PyTorch."""
    reporting.set_progress_bars(True)  # long steps show a bar when stderr is a terminal ('train' decides again)
