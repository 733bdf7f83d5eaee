"""Write docs/terminal_transcript.md: what ``object2vec train`` shows a person at a terminal.

Runs ``object2vec train`` on generated pairs in a pseudo-terminal (no screenshot: the bytes the
command wrote, replayed as a terminal draws them, see ``tests/terminal.py``), then the same command
with its output piped, which prints SageMaker's metric lines as it always has. Run from the
repository root::

    python scripts/terminal_transcript.py            # a minute or two on a quiet 2-core machine
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from object2vec.data.synthetic import make_pairs, write_jsonl  # noqa: E402
from terminal import run_in_terminal, screen  # noqa: E402

HYPERPARAMETERS = [
    "-p", "enc0_network=pooled_embedding", "-p", "enc0_max_seq_len=10", "-p", "enc0_vocab_size=200",
    "-p", "enc_dim=64", "-p", "mlp_dim=64", "-p", "epochs=4", "-p", "mini_batch_size=64", "-p", "learning_rate=0.01",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=60000, help="Training pairs (enough for an epoch of a few seconds).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "terminal_transcript.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        write_jsonl(make_pairs(args.pairs, seed=1), "train.jsonl")
        write_jsonl(make_pairs(args.pairs // 10, seed=2), "validation.jsonl")
        write_jsonl(make_pairs(args.pairs // 10, seed=3), "test.jsonl")
        command = ["object2vec", "train", "--train", "train.jsonl", "--validation", "validation.jsonl", "--test", "test.jsonl"]
        command += [*HYPERPARAMETERS, "-o", "model"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "110"}
        executable = [sys.executable, "-m", "object2vec", *command[1:]]
        load = os.getloadavg()[0]
        started = time.perf_counter()
        code, raw = run_in_terminal(executable, env=env, columns=110, timeout=1200)
        seconds = time.perf_counter() - started
        if code != 0:
            sys.exit(f"train failed at the terminal ({code}):\n{screen(raw)}")
        frame = _frame_during(raw, "epoch 3:")
        piped = subprocess.run([*executable[:-1], "model-piped"], env=env, capture_output=True, text=True, check=True)
    shell = " ".join(command[:8]) + " \\\n    " + " ".join(command[8:])
    text = f"""# `object2vec train` at a terminal

Captured by `python scripts/terminal_transcript.py`: the command ran in a pseudo-terminal (110 columns,
1 CPU thread, {args.pairs:,} generated pairs) and its bytes were replayed as a terminal draws them, so
this is what a person sees, not a screenshot. It took {seconds:.0f} s end to end, with a load average of
{load:.1f} on {os.cpu_count()} cores when it started{_shared(load)}.

```console
$ {shell}
```

While epoch 3 runs, the epochs so far and a bar for the current one (it clears itself when the epoch ends):

```
{frame}
```

At the end: one line per epoch (training loss and accuracy, validation loss and accuracy, pairs per
second, the epoch's wall time and the time left for the whole run), then the table: metrics of the best
epoch per split, the best epoch, the wall time and where the model is.

```
{screen(raw)}
```

Piped or redirected, the same command prints exactly SageMaker's metric lines (stderr) and
`model written to ...` (stdout), as before `--log-format` existed; `--log-format human|sagemaker|both`
chooses explicitly. Here both went to pipes (stderr shown first):

```
{piped.stderr.rstrip()}
{piped.stdout.rstrip()}
```
"""
    args.out.write_text(text)
    print(f"wrote {args.out}")


def _shared(load: float) -> str:
    cores = os.cpu_count() or 1
    if load <= cores:
        return ""
    return " (other jobs shared the machine, so the speeds shown are not this package's: see benchmarks.md)"


def _frame_during(raw: str, bar: str) -> str:
    """The screen just after the last drawing of ``bar`` that shows a percentage below 100."""
    ends = [m.end() for m in re.finditer(re.escape(bar) + r"\s+\d{1,2}%\|[^\r]*", raw)]
    if not ends:
        return "(the epoch ended before its bar was drawn: use more --pairs)"
    return screen(raw[: ends[len(ends) // 2]])


if __name__ == "__main__":
    main()
