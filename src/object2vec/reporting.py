"""Training output: SageMaker-format metric lines, rank awareness, and how the CLI shows logs.

The metric lines are exactly the ones SageMaker Object2Vec prints, so metric definitions written
for SageMaker (``validation:accuracy`` and the rest, each a regex over these lines) keep working on
our logs::

    #quality_metric: host=algo-1, epoch=3, validation accuracy <score>=0.81
    #throughput_metric: host=algo-1, train throughput=12345.6 records/second

They go through this module's logger (``object2vec.reporting``) and nothing else does, so a log
format can keep or drop them as a whole. Lines for a person (one per epoch, progress bars) come from
:mod:`object2vec.console`. Only rank 0 of a distributed run prints either.

Log formats (``object2vec train --log-format``): ``sagemaker`` prints the metric lines, ``human`` the
lines for a person, ``both`` both; the default is ``human`` when stdout and stderr are terminals,
else ``sagemaker``, so logs, pipes and SageMaker's container get exactly the lines they always got.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)  # SageMaker's metric lines, and only them
PACKAGE = "object2vec"  # the CLI's handler sits on the package logger; every module's logger is below it
HUMAN = "object2vec.console"  # the logger of the lines for a person (object2vec.console)
LOG_FORMATS = ("sagemaker", "human", "both")

SCORES = {"accuracy"}  # SageMaker tags accuracy as <score> and every loss as <loss>
SPLITS = ("train", "validation", "test")
QUALITY_METRICS = ("accuracy", "cross_entropy", "mean_squared_error")  # SageMaker's; rmse is our extra, not listed

_progress_bars: bool | None = None  # None: not chosen by the CLI (library use)
_handler: logging.Handler | None = None


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def launched_by_torchrun() -> bool:
    """Whether this process is one of several ``torchrun`` workers (read from the environment, so
    the command line can ask without importing PyTorch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


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


def metric_definitions() -> list[dict[str, str]]:
    r"""The ``MetricDefinitions`` a bring-your-own-container estimator passes to SageMaker: the built-in
    algorithm's metric names, with regexes that read the lines above (the built-in algorithm's own).

    >>> [d["Name"] for d in metric_definitions()][:3]
    ['train:accuracy', 'train:cross_entropy', 'train:mean_squared_error']
    >>> print(metric_definitions()[3]["Regex"])
    #quality_metric: host=\S+, epoch=\S+, validation accuracy <score>=(\S+)
    """
    out = []
    for split in SPLITS:
        for name in QUALITY_METRICS:
            epoch = r"epoch=\S+, " if split != "test" else ""  # test is scored once, after training
            kind = "score" if name in SCORES else "loss"
            out.append({"Name": f"{split}:{name}", "Regex": rf"#quality_metric: host=\S+, {epoch}{split} {name} <{kind}>=(\S+)"})
    out.append({"Name": "train:progress", "Regex": r"#progress_metric: host=\S+, completed (\S+) %"})
    out.append({"Name": "train:throughput", "Regex": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second"})
    return out


def emit(line: str) -> None:
    """Log one SageMaker metric line (rank 0 only)."""
    if is_main_process():
        logger.info(line)


def at_terminal() -> bool:
    """Whether a person is watching: stdout and stderr both terminals (a pipe or file on either means a program)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def default_log_format() -> str:
    return "human" if at_terminal() else "sagemaker"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged, not to the stream of the moment the
    handler was made: a command run twice in one process (tests, notebooks) prints to its own stderr."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _FormatFilter(logging.Filter):
    """Keeps the SageMaker metric lines, the lines for a person, or both; every other record passes."""

    def __init__(self, log_format: str):
        super().__init__()
        self.sagemaker = log_format in ("sagemaker", "both")
        self.human = log_format in ("human", "both")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == logger.name:
            return self.sagemaker
        if record.name == HUMAN or record.name.startswith(HUMAN + "."):
            return self.human
        return True


def configure_cli_logging(verbose: bool = True, log_format: str = "sagemaker") -> None:
    """Plain lines on stderr, as SageMaker's container prints them; used by the CLI only.

    ``log_format`` picks which lines show (module docstring); progress bars show at a terminal
    unless it is ``sagemaker``. Calling it again replaces the earlier setting.
    """
    global _handler
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format={log_format!r}; expected one of {', '.join(LOG_FORMATS)}")
    package = logging.getLogger(PACKAGE)
    if _handler is not None:
        package.removeHandler(_handler)
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _handler.addFilter(_FormatFilter(log_format))
    package.addHandler(_handler)
    package.setLevel(logging.INFO if verbose else logging.WARNING)
    package.propagate = False
    set_progress_bars(verbose and log_format != "sagemaker")


def set_progress_bars(on: bool | None) -> None:
    """Whether the CLI wants progress bars (still only at a terminal, on rank 0); None: library default."""
    global _progress_bars
    _progress_bars = on


def show_progress_bar() -> bool:
    """A live bar only for a person at a terminal; logs, CI and SageMaker get plain lines.

    Library use (no CLI): bars at a terminal when the ``object2vec`` logger shows INFO.
    """
    if not (is_main_process() and sys.stderr.isatty()):
        return False
    if _progress_bars is None:
        return logging.getLogger(PACKAGE).isEnabledFor(logging.INFO)
    return _progress_bars
