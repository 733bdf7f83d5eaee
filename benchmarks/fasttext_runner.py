"""fastText as a baseline, in its own virtual environment (shared by benchmarks/text_classification.py and
examples/text_classification.py).

fastText's wheel (``fasttext-wheel``) needs ``numpy<2``, which object2vec's environment does not have,
so it lives in a virtual environment of its own, made once under object2vec's cache folder
(``python -m venv`` + ``pip install "numpy<2" fasttext-wheel``). A run is one subprocess that trains
with ``train_supervised`` on a fastText text file (``__label__<class> token token ...``) and prints
its wall time (reading the file and training: what fastText's own command would take) and its
accuracy on the other files. When the environment cannot be made (no network, no wheel for this
platform), callers skip fastText with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from object2vec.files import cache_dir

_SCRIPT = r"""
import json, sys, time
import fasttext
train, tests, settings = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
start = time.perf_counter()
model = fasttext.train_supervised(train, verbose=0, **settings)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, **{name: model.test(path)[1] for name, path in tests.items()}}))
"""


def fasttext_python() -> tuple[str | None, str]:
    """``(python with fasttext, "")``, or ``(None, why not)``."""
    venv = cache_dir() / "bench-fasttext-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import fasttext"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python), ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        install = [str(python), "-m", "pip", "install", "-q", "numpy<2", "fasttext-wheel"]
        subprocess.run(install, check=True, capture_output=True, timeout=600)
        subprocess.run(check, check=True, capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = (getattr(e, "stderr", None) or b"").decode(errors="replace").strip()[-200:]
        return None, f"fastText skipped: could not install fasttext-wheel ({detail or e})"
    return str(python), ""


def train_fasttext(python: str, train: Path, tests: dict[str, Path], settings: dict[str, Any]) -> dict[str, float]:
    """``{"seconds": wall time of train_supervised, name: accuracy on tests[name], ...}``."""
    command = [python, "-c", _SCRIPT, str(train), json.dumps({k: str(v) for k, v in tests.items()}), json.dumps(settings)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
