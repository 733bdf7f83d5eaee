"""Optional dependencies, imported only by the functions that need them.

faiss, scikit-learn, matplotlib and umap-learn take seconds to import and are not needed to train
or score, so ``import object2vec`` never loads them. When one is missing the error names the pip
extra that installs it, rather than a bare ``ModuleNotFoundError`` from deep inside a command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# module -> (pip extra, distribution name as pip knows it)
EXTRAS = {
    "faiss": ("search", "faiss-cpu"),
    "sklearn": ("viz", "scikit-learn"),
    "matplotlib": ("viz", "matplotlib"),
    "umap": ("viz", "umap-learn"),
    "onnx": ("onnx", "onnx"),
    "huggingface_hub": ("hub", "huggingface_hub"),
    "onnxruntime": ("onnx", "onnxruntime"),
    "optuna": ("tune", "optuna"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow-skinny"),
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying which extra installs it.

    >>> require("json", "a doctest").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra, dist = EXTRAS.get(module.split(".")[0], ("all", module))
        raise MissingExtraError(
            f"{purpose} needs {dist}, which is not installed ({e}); install it with: pip install 'object2vec[{extra}]'"
        ) from None
