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

from .errors import HyperparameterError, ModelFormatError, Object2VecError
from .files import atomic_path, atomic_write_bytes, atomic_write_json, explain_write_error
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
    from . import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG).unlink(missing_ok=True)  # an earlier model's config must not vouch for half-replaced files
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "object2vec_version": __version__,
        "hyperparameters": net.hp.to_dict(),
        **(extra or {}),
    }
    written: list[Path] = []
    try:
        with atomic_path(folder / WEIGHTS) as tmp:
            save_model(net, str(tmp))  # handles the shared tensor of tied embeddings
        written.append(folder / WEIGHTS)
        if metrics is not None:
            atomic_write_json(folder / METRICS, metrics)
            written.append(folder / METRICS)
        for name, data in (assets or {}).items():
            atomic_write_bytes(folder / ASSETS / name, data)
            written.append(folder / ASSETS / name)
        atomic_write_json(folder / CONFIG, config)
    except Exception as e:  # a full disk: no partial model is left (safetensors reports it as its own error type)
        for path in written:
            path.unlink(missing_ok=True)
        raise Object2VecError(f"cannot write the model to {folder}: {explain_write_error(folder, e)}") from None
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
    if type(version) is not int or version < 1:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is not a format version; expected an int in [1, {FORMAT_VERSION}]"
        )
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format_version {version!r} is not supported by this object2vec (reads up to {FORMAT_VERSION}); upgrade object2vec"
        )
    if not isinstance(config.get("hyperparameters", {}), dict):
        raise ModelFormatError(f"{path}: hyperparameters is not an object; expected name -> value")
    return config


def load(folder: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Object2VecNet, dict[str, Any]]:
    """Rebuild the network from a model folder; returns ``(net, metrics)``."""
    folder = Path(folder)
    config = read_config(folder)
    try:
        hp = Hyperparameters.from_dict(config.get("hyperparameters", {}))
    except HyperparameterError as e:
        raise ModelFormatError(f"{folder / CONFIG}: {e}") from None
    net = Object2VecNet(hp, initialise=False)  # every weight is loaded below
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise ModelFormatError(f"{folder}: has no {WEIGHTS}")
    try:
        missing, unexpected = load_model(net, weights, strict=False, device=str(device))
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelFormatError(f"{weights}: cannot be read ({e})") from None
    if missing or unexpected:
        raise ModelFormatError(f"{weights}: does not match {CONFIG} (missing {sorted(missing)}, unexpected {sorted(unexpected)})")
    bad = [name for name, tensor in net.state_dict().items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise ModelFormatError(
            f"{weights}: {', '.join(bad)} hold NaN or infinite values; this model cannot score anything (retrain it)"
        )
    metrics = read_metrics(folder)
    net.to(device).eval()
    return net, metrics


def read_metrics(folder: str | os.PathLike) -> dict[str, Any]:
    """``metrics.json`` (``{}`` when absent: it is optional)."""
    path = Path(folder) / METRICS
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{path}: is not valid JSON ({e}); delete it (it is optional) or restore it") from None
    if not isinstance(metrics, dict):
        raise ModelFormatError(f"{path}: holds {type(metrics).__name__}; expected a JSON object (delete it: it is optional)")
    return metrics


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
