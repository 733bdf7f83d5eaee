"""object2vec: SageMaker Object2Vec without SageMaker — embeddings of pairs, trained with PyTorch.

The public names are imported on first use (PEP 562), so ``import object2vec`` and
``object2vec --help`` do not load PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._threads import prefer_short_spins

__version__ = "0.1.0"

prefer_short_spins()  # before torch loads: OpenMP reads its spin count once (see _threads)

_EXPORTS = {
    "Object2Vec": "object2vec.estimator",
    "Hyperparameters": "object2vec.hyperparameters",
    "hyperparameter_table": "object2vec.hyperparameters",
    "PairData": "object2vec.data.pairs",
    "Schema": "object2vec.data.pairs",
    "Side": "object2vec.data.pairs",
    "read_pairs": "object2vec.data.pairs",
    "DataError": "object2vec.errors",
    "HyperparameterError": "object2vec.errors",
    "ModelFormatError": "object2vec.errors",
    "NotFittedError": "object2vec.errors",
    "Object2VecError": "object2vec.errors",
    "TuningConfigError": "object2vec.errors",
    "tune": "object2vec.tuning.runner",
    "read_tuning_config": "object2vec.tuning.parse",
}

__all__ = [
    "DataError",
    "HyperparameterError",
    "Hyperparameters",
    "ModelFormatError",
    "NotFittedError",
    "Object2Vec",
    "Object2VecError",
    "PairData",
    "Schema",
    "Side",
    "TuningConfigError",
    "__version__",
    "hyperparameter_table",
    "read_pairs",
    "read_tuning_config",
    "tune",
]

if TYPE_CHECKING:
    from .data.pairs import PairData, Schema, Side, read_pairs
    from .errors import DataError, HyperparameterError, ModelFormatError, NotFittedError, Object2VecError, TuningConfigError
    from .estimator import Object2Vec
    from .hyperparameters import Hyperparameters, hyperparameter_table
    from .tuning.parse import read_tuning_config
    from .tuning.runner import tune


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'object2vec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
