"""What the benchmark scripts share: the machine, the CPU time others take, peak memory, fresh processes, tables.

Timings on a shared machine are only as good as what is known about the load beside them, so every
benchmark can say how busy the CPUs were (``/proc/stat``), measure peak memory per process
(``VmHWM``, resettable through ``/proc/self/clear_refs``), run each measurement in a fresh process
(no allocator state, thread pool or memory peak carries over) and print its results as Markdown
tables that paste into ``docs/benchmarks.md``. Linux gives the most; elsewhere the functions fall
back to what the platform knows or answer None.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------------
# Machine


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float  # perf_counter seconds
    all_busy: float | None  # CPU-seconds every process has used so far (/proc/stat); None off Linux
    own: float  # CPU-seconds this process has used so far (user + kernel)
    own_kernel: float  # of which in the kernel (page faults of big allocations show up here)


def cpu_snapshot() -> CpuSnapshot:
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        all_busy: float | None = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    except (OSError, ValueError, IndexError):
        all_busy = None
    times = os.times()
    return CpuSnapshot(time.perf_counter(), all_busy, times.user + times.system, times.system)


def others_cpu_seconds(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    """CPU-seconds that *other* processes used between two snapshots: the noise in our timings."""
    if before.all_busy is None or after.all_busy is None:
        return None
    return max(0.0, (after.all_busy - before.all_busy) - (after.own - before.own))


def others_percent(cpu_seconds: float | None, wall_seconds: float) -> float | None:
    """Other processes' share of the whole machine's CPU capacity over ``wall_seconds``."""
    capacity = wall_seconds * (os.cpu_count() or 1)
    return None if cpu_seconds is None or capacity <= 0 else 100.0 * cpu_seconds / capacity


def idle_check(seconds: float = 1.0) -> float | None:
    """Other processes' CPU share over the next ``seconds``, before any work starts."""
    before = cpu_snapshot()
    time.sleep(seconds)
    after = cpu_snapshot()
    return others_percent(others_cpu_seconds(before, after), after.wall - before.wall)


def system_info() -> dict[str, Any]:
    """The machine and software a run's numbers belong to, and how busy the CPUs were just before it."""
    import torch

    return {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_1min": load_average(),
        "others_cpu_percent_before_start": idle_check(),
    }


# --------------------------------------------------------------------------------------------------
# Memory: Linux counts a process's peak resident set (VmHWM) and lets the process reset it to the
# current RSS by writing "5" to /proc/self/clear_refs; elsewhere only ru_maxrss (never reset) exists.


def proc_status_mb(key: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of this process in MiB, from /proc/self/status (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    rss = proc_status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


class AnonSampler:
    """Samples ``RssAnon`` (anonymous resident memory) every 10 ms in a thread; keeps the highest.

    VmHWM counts pages of memory-mapped files too (a cached reload maps its token arrays), which the
    kernel can drop and re-read at will; RssAnon is the part that must stay in RAM."""

    def __init__(self) -> None:
        import threading

        self.peak: float | None = proc_status_mb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            value = proc_status_mb("RssAnon")
            if value is not None:
                self.peak = max(self.peak or 0.0, value)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak


# --------------------------------------------------------------------------------------------------
# Processes

# Modules a fork server imports once, so that a child forked from it starts without importing torch
# (Python 3.11's fork server does not preload the main script's imports by itself).
PRELOAD = [
    "numpy",
    "orjson",
    "torch",
    "object2vec",
    "object2vec.estimator",
    "object2vec.data.synthetic",
    "object2vec.training.loop",
]


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new process: no allocator state, thread pool or memory peak carries over.

    Linux and macOS use a fork server that has imported torch and object2vec but never computed
    anything, so a child starts in a fraction of a second; elsewhere a plain spawn.
    """
    if "forkserver" in get_all_start_methods():
        context = get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (first call)
    else:
        context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


START_ENV = "OBJECT2VEC_BENCH_START"  # wall-clock start of the run, inherited by every child process
IMPORTED = time.time()  # the start when no run set START_ENV (a script that starts no children)


def log(message: str) -> None:
    """Progress on stderr, stamped with the seconds since the run started."""
    elapsed = time.time() - float(os.environ.get(START_ENV, IMPORTED))
    print(f"[{elapsed:6.1f} s] {message}", file=sys.stderr, flush=True)


def child_setup(threads: int | None) -> None:
    """What every timing process does first: its thread count, ``--mallopt``'s allocator thresholds, quiet logs."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if os.environ.get("OBJECT2VEC_BENCH_MALLOPT") == "1":  # --mallopt: every row, the plain baseline included
        from object2vec.training.allocator import keep_freed_memory

        keep_freed_memory()
    logging.getLogger("object2vec").setLevel(logging.WARNING)  # no metric lines, no progress bars


# --------------------------------------------------------------------------------------------------
# Output


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    """``fn``'s returned line count and the seconds it took."""
    t0 = time.perf_counter()
    lines = fn()
    return lines, time.perf_counter() - t0


def markdown_table(header: list[str], rows: list[list[str]], align: bool = False) -> str:
    """A Markdown table; ``align`` pads the columns (first left, the others right) for reading in a terminal."""
    rule = ["---" for _ in header]
    if align:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def pad(row: list[str]) -> list[str]:
            return [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]

        header, rows, rule = pad(header), [pad(row) for row in rows], ["-" * (w + 2) for w in widths]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def percent(value: float | None) -> str:
    return f"{value:.0f}%" if value is not None else "n/a"
