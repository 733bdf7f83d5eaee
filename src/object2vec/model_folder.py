"""The model folder: everything needed to rebuild a trained model, written atomically.

::

    model/
      config.json         format name and version + every resolved hyperparameter
      model.safetensors   weights (tied tables stored once, via safetensors.torch.save_model)
      metrics.json        per-epoch metrics, best epoch, test metrics
      auxiliary/          only for a model trained with a vocabulary: the vocab files its
                          hyperparameters name, tokenization.json, a tokenizer file if any
                          (pretrained vectors are not copied: they are in the weights)

Each file is written to a temporary name in the same folder and renamed into place, so a crash
never leaves a half-written file under a real name. ``config.json`` is written last: a folder
without it is not a model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from .errors import HyperparameterError, ModelFormatError
from .files import atomic_path, atomic_write_bytes, atomic_write_json
from .hyperparameters import Hyperparameters
from .nn.model import Object2VecNet
from .text.tokenize import AuxiliaryFileError, TextCodec

FORMAT = "object2vec"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, METRICS, ASSETS = "config.json", "model.safetensors", "metrics.json", "auxiliary"


def save(
    folder: str | os.PathLike,
    net: Object2VecNet,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    assets: Mapping[str, bytes] | None = None,
) -> Path:
    """Write ``net`` (and its metrics) to ``folder``; returns the folder.

    ``assets`` (file name -> bytes) go to ``folder/auxiliary/``: the text files a model needs to read
    strings (:meth:`object2vec.text.tokenize.TextCodec.assets`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_model(net, str(tmp))  # handles the shared tensor of tied embeddings
    if metrics is not None:
        atomic_write_json(folder / METRICS, metrics)
    for name, data in (assets or {}).items():
        atomic_write_bytes(folder / ASSETS / name, data)
    from . import __version__

    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "object2vec_version": __version__,
        "hyperparameters": net.hp.to_dict(),
        **(extra or {}),
    }
    atomic_write_json(folder / CONFIG, config)
    return folder


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a model folder, checked for format and version."""
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise ModelFormatError(
            f"{folder}: no such model folder; expected a folder written by 'object2vec train' or Object2Vec.save"
        )
    if not path.is_file():
        raise ModelFormatError(f"{folder}: has no {CONFIG}; expected a folder written by 'object2vec train' or Object2Vec.save")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path}: is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFormatError(f'{path}: has wrong file format; expected "format": "{FORMAT}"')
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is not supported by this object2vec (reads up to {FORMAT_VERSION}); upgrade object2vec"
        )
    return config


def load(folder: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Object2VecNet, dict[str, Any]]:
    """Rebuild the network from a model folder; returns ``(net, metrics)``."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        hp = Hyperparameters.from_dict(config.get("hyperparameters", {}))
    except HyperparameterError as e:
        raise ModelFormatError(f"{folder / CONFIG}: {e}") from None
    net = Object2VecNet(hp)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ModelFormatError(f"{folder}: has no {WEIGHTS}")
    try:
        missing, unexpected = load_model(net, weights, strict=False, device=str(device))
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelFormatError(f"{weights}: cannot be read ({e})") from None
    if missing or unexpected:
        raise ModelFormatError(f"{weights}: does not match {CONFIG} (missing {sorted(missing)}, unexpected {sorted(unexpected)})")
    metrics = {}
    if (folder / METRICS).is_file():
        metrics = json.loads((folder / METRICS).read_text())
    net.to(device).eval()
    return net, metrics


def load_text(folder: str | os.PathLike, hp: Hyperparameters) -> TextCodec | None:
    """The text codec saved with a model (``None`` if it was trained without a vocabulary)."""
    hp = hp.resolve()
    names = (hp.encoder(0).vocab_file, hp.encoder(1).vocab_file)
    if not any(names):
        return None
    try:
        return TextCodec.from_folder(Path(folder) / ASSETS, names)
    except AuxiliaryFileError as e:
        raise ModelFormatError(f"{folder}: the model names a vocabulary, but its {ASSETS}/ folder is incomplete: {e}") from None
