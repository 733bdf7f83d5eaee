"""object2vec: SageMaker Object2Vec without SageMaker — embeddings of pairs, trained with PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

from .data.pairs import PairData, Schema, Side, read_pairs
from .errors import DataError, HyperparameterError, ModelFormatError, NotFittedError, Object2VecError
from .estimator import Object2Vec
from .hyperparameters import Hyperparameters, hyperparameter_table

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
    "__version__",
    "hyperparameter_table",
    "read_pairs",
]
