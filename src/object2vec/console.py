"""Output for a person at a terminal: progress bars, one line per epoch, and the table at the end.

Nothing here changes what a log or SageMaker sees. Bars show only where
:func:`object2vec.reporting.show_progress_bar` allows (a terminal, rank 0, not in SageMaker's log
format) and only for work that has taken longer than :data:`DELAY` seconds, so quick steps and
small files draw nothing. The per-epoch lines go through this module's logger
(``object2vec.console``), which the CLI's ``--log-format`` keeps (``human``, ``both``) or drops
(``sagemaker``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

from . import reporting

logger = logging.getLogger(__name__)

DELAY = 1.0  # seconds before a bar appears: anything quicker draws nothing


def progress(total: float | None = None, *, desc: str, unit: str = "it", delay: float | None = None, **options: Any) -> Any:
    """A tqdm bar on stderr, disabled unless a person is watching; it clears itself when closed."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        leave=False,
        dynamic_ncols=True,
        delay=DELAY if delay is None else delay,
        disable=not reporting.show_progress_bar(),
        **options,
    )


class FileProgress:
    """A bar over a file's bytes that follows how far it has been read (compressed bytes of a gzip file).

    ``update()`` is cheap to call often: it asks the file for its position, and does nothing when
    the bar is off.
    """

    def __init__(self, fh: IO[bytes], desc: str, span: tuple[int, int] | None = None):
        self.raw = getattr(fh, "fileobj", None) or fh  # gzip.GzipFile reads through .fileobj
        if span is None:
            try:
                span = (0, os.fstat(self.raw.fileno()).st_size)
            except (OSError, AttributeError, ValueError):
                span = (0, 0)
        self.first = span[0]
        self.bar = progress(max(span[1] - span[0], 0) or None, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)

    def update(self, position: int | None = None) -> None:
        """Move to ``position`` (a byte offset in the file), or to where the file has been read."""
        if self.bar.disable:
            return
        if position is None:
            try:
                position = self.raw.tell()
            except (OSError, ValueError):
                return
        done = position - self.first
        if self.bar.total:
            done = min(done, self.bar.total)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> FileProgress:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


@contextlib.contextmanager
def working(desc: str) -> Iterator[None]:
    """For one long call that reports no progress of its own (k-means, UMAP, a faiss build): a line
    with the time it has taken so far, redrawn twice a second."""
    bar = progress(None, desc=desc, bar_format="{desc}: {elapsed}")
    if bar.disable:
        yield
        return
    stop = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        while not stop.wait(0.5):
            if time.monotonic() - start >= DELAY:
                bar.refresh()

    thread = threading.Thread(target=tick, name="object2vec-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


# --------------------------------------------------------------------------------------------------
# Training: one line per epoch, a table at the end


def duration(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h07m``: short enough for an epoch line."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _short(metrics: Mapping[str, float]) -> str:
    """``loss 0.3124 acc 0.8712`` (classification) or ``loss 0.4102 rmse 0.6405`` (regression)."""
    if "accuracy" in metrics:
        return f"loss {metrics['cross_entropy']:.4f} acc {metrics['accuracy']:.4f}"
    return f"loss {metrics['mean_squared_error']:.4f} rmse {metrics['rmse']:.4f}"


class EpochLines:
    """A training callback that logs one line per epoch for a person::

        epoch  3/10  train loss 0.3124 acc 0.8712  validation loss 0.3301 acc 0.8650  61.2k pairs/s  1.2s  ETA 8.4s

    The ETA is for the whole run: the mean wall time of the epochs so far (evaluation and
    checkpoints included) times the epochs left; early stopping can only make it shorter.
    """

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.durations: list[float] = []
        self.last: float | None = None

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        # the first epoch's wall time is unknown here (data loading came before it): its training time stands in
        self.durations.append(record["seconds"] if self.last is None else now - self.last)
        self.last = now
        if reporting.is_main_process():
            logger.info(self.line(record))

    def line(self, record: dict[str, Any]) -> str:
        epoch = record["epoch"]
        width = len(str(self.epochs))
        parts = [f"epoch {epoch:>{width}}/{self.epochs}", f"train {_short(record['train'])}"]
        if record.get("validation"):
            parts.append(f"validation {_short(record['validation'])}")
        parts.append(f"{_rate(record['throughput'])} pairs/s")
        parts.append(duration(self.durations[-1]))
        left = max(self.epochs - epoch, 0)
        parts.append(f"ETA {duration(left * sum(self.durations) / len(self.durations))}" if left else "done")
        return "  ".join(parts)


def _rate(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def summary_table(metrics: Mapping[str, Any], epochs: int, seconds: float, model: str | os.PathLike | None = None) -> list[str]:
    """The end of a run for a person: metrics at the best epoch per split, the best epoch, wall time, the model.

    ``metrics`` is a model's ``metrics_`` (``{"epochs", "best_epoch", "stopped_early", "test"}``).

    >>> history = [{"epoch": 1, "train": {"accuracy": 0.9, "cross_entropy": 0.3}, "throughput": 5e4, "seconds": 1.0}]
    >>> print("\\n".join(summary_table({"epochs": history, "best_epoch": 1, "test": None}, 1, 2.5, "model")))
                   train
    accuracy       0.9000
    cross_entropy  0.3000
    best epoch     1 of 1
    wall time      2.5s (training 1.0s, 50.0k pairs/s)
    model          model
    """
    history: Sequence[dict[str, Any]] = metrics.get("epochs") or []
    best = metrics.get("best_epoch")
    row = next((r for r in history if r["epoch"] == best), history[-1] if history else {})
    columns = {split: row[split] for split in ("train", "validation") if row.get(split)}
    if metrics.get("test"):
        columns["test"] = metrics["test"]
    names = list(dict.fromkeys(name for values in columns.values() for name in values))
    label = max([len(n) for n in names] + [len("best epoch"), len("wall time")]) + 2
    lines = []
    if columns:
        lines.append(" " * label + "  ".join(f"{split:<10}" for split in columns).rstrip())
        for name in names:
            cells = [f"{values[name]:<10.4f}" if name in values else f"{'-':<10}" for values in columns.values()]
            lines.append(f"{name:<{label}}" + "  ".join(cells).rstrip())
    if best is not None:
        note = ""
        if metrics.get("stopped_early") and history:
            note = f" (stopped early after epoch {history[-1]['epoch']})"
        lines.append(f"{'best epoch':<{label}}{best} of {epochs}{note}")
    trained = sum(r.get("seconds", 0.0) for r in history)
    pairs = sum(r.get("throughput", 0.0) * r.get("seconds", 0.0) for r in history)
    speed = f" (training {duration(trained)}, {_rate(pairs / trained)} pairs/s)" if trained > 0 else ""
    lines.append(f"{'wall time':<{label}}{duration(seconds)}{speed}")
    if model is not None:
        lines.append(f"{'model':<{label}}{model}")
    return lines
