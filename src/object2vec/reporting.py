"""Training output: SageMaker-format metric lines, a progress bar, and rank awareness.

The metric lines are exactly the ones SageMaker Object2Vec prints, so metric definitions written
for SageMaker (``validation:accuracy`` and the rest, each a regex over these lines) keep working on
our logs::

    #quality_metric: host=algo-1, epoch=3, validation accuracy <score>=0.81
    #throughput_metric: host=algo-1, train throughput=12345.6 records/second

Only rank 0 of a distributed run prints.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

logger = logging.getLogger("object2vec")

SCORES = {"accuracy"}  # SageMaker tags accuracy as <score> and every loss as <loss>


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def host() -> str:
    """SageMaker's host name for this process: algo-1, algo-2, ..."""
    return f"algo-{rank() + 1}"


def is_main_process() -> bool:
    return rank() == 0


def quality_line(split: str, name: str, value: float, epoch: int | None = None) -> str:
    kind = "score" if name in SCORES else "loss"
    where = f"host={host()}" + (f", epoch={epoch}" if epoch is not None else "")
    return f"#quality_metric: {where}, {split} {name} <{kind}>={value:.6g}"


def throughput_line(records_per_second: float) -> str:
    return f"#throughput_metric: host={host()}, train throughput={records_per_second:.1f} records/second"


def progress_line(percent: float) -> str:
    return f"#progress_metric: host={host()}, completed {percent:.0f} %"


def emit(line: str) -> None:
    if is_main_process():
        logger.info(line)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged, not to the stream of the moment the
    handler was made: a command run twice in one process (tests, notebooks) prints to its own stderr."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_cli_logging(verbose: bool = True) -> None:
    """Plain lines on stderr, as SageMaker's container prints them; used by the CLI only."""
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def show_progress_bar() -> bool:
    """A live bar only for a person at a terminal; logs and CI get plain lines."""
    return is_main_process() and sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)
