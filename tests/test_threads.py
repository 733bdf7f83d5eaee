"""OpenMP's waits: object2vec asks for short spins before a waiting thread sleeps, unless the user or
torch got there first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"


def _settings(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_object2vec_makes_openmp_threads_spin_briefly_before_they_sleep():
    assert _settings(f"import object2vec; {SHOW}") == "None 10000"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None"), ({"GOMP_SPINCOUNT": "1000"}, "None 1000")],
)
def test_a_policy_the_user_set_is_kept(env, expected):
    assert _settings(f"import object2vec; {SHOW}", **env) == expected


def test_nothing_is_set_once_torch_is_loaded_as_openmp_has_read_its_settings():
    assert _settings(f"import torch, object2vec; {SHOW}") == "None None"
