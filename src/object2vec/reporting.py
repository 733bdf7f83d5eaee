"""Training output: SageMaker-format metric lines, a progress bar, and rank awareness.

The metric lines are exactly the ones SageMaker Object2Vec prints, so metric-definition regexes
written for SageMaker (spec §3) keep working on our logs::

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
SPLITS = ("train", "validation", "test")
QUALITY_METRICS = ("accuracy", "cross_entropy", "mean_squared_error")  # SageMaker's; rmse is our extra, not listed


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
    if is_main_process():
        logger.info(line)


class _CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a line is logged (test runners and
    ``click.testing.CliRunner`` swap it between commands run in one process)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_cli_logging(verbose: bool = True) -> None:
    """Plain lines on stderr, as SageMaker's container prints them; used by the CLI only."""
    logger.setLevel(logging.INFO if verbose else logging.WARNING)  # each command's own --quiet
    if logger.handlers:
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def show_progress_bar() -> bool:
    """A live bar only for a person at a terminal; logs and CI get plain lines."""
    return is_main_process() and sys.stderr.isatty() and logger.isEnabledFor(logging.INFO)
