"""The allocator thresholds are raised once, only on Linux/glibc, and can be switched off."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "from object2vec.training.allocator import keep_freed_memory as k; print(k(), k())"


def run(env_value: str | None) -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k != "OBJECT2VEC_MALLOPT"}
    if env_value is not None:
        env["OBJECT2VEC_MALLOPT"] = env_value
    return subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_thresholds_are_raised_on_linux():
    assert run(None) == "True True"


def test_object2vec_mallopt_0_leaves_the_allocator_alone():
    assert run("0") == "False False"
