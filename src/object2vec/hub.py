"""Sharing models on the Hugging Face Hub: a model folder plus a generated model card.

:meth:`Object2Vec.save_pretrained` writes the ordinary model folder (``config.json``,
``model.safetensors``, ``metrics.json``, ``auxiliary/``) and a ``README.md`` model card;
:meth:`Object2Vec.push_to_hub` uploads that folder to a Hub repository; and
:meth:`Object2Vec.from_pretrained` loads a local folder or downloads a repository (``huggingface_hub``,
the optional extra ``object2vec[hub]``). Weights travel as safetensors, so loading runs no code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from ._optional import require
from .files import atomic_write_bytes
from .hyperparameters import Hyperparameters

if TYPE_CHECKING:
    from .estimator import Object2Vec

CARD = "README.md"


def save_pretrained(model: Object2Vec, folder: str | os.PathLike) -> Path:
    """The model folder and its model card in ``folder``; returns ``folder``."""
    folder = Path(folder)
    model.save(folder)
    atomic_write_bytes(folder / CARD, model_card(model).encode())
    return folder


def from_pretrained(cls: type[Object2Vec], source: str | os.PathLike, device: str = "auto", **download: Any) -> Object2Vec:
    """Load a local model folder, or download Hub repository ``source`` (``revision=``, ``token=``,
    ``cache_dir=`` ... go to ``huggingface_hub.snapshot_download``) and load it."""
    if Path(source).is_dir():
        return cls.load(source, device=device)
    hub = require("huggingface_hub", "loading a model from the Hugging Face Hub")
    folder = hub.snapshot_download(repo_id=str(source), **download)
    return cls.load(folder, device=device)


def push_to_hub(
    model: Object2Vec,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload Object2Vec model",
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload the model folder and card; returns the commit's URL."""
    hub = require("huggingface_hub", "pushing a model to the Hugging Face Hub")
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory(prefix="object2vec-push-") as tmp:
        save_pretrained(model, tmp)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, commit_message=commit_message, revision=revision, repo_type="model"
        )
    return str(getattr(info, "commit_url", info))


def model_card(model: Object2Vec) -> str:
    """A ``README.md`` for the Hub: what the model does, how it was trained, how well, how to load it."""
    hp: Hyperparameters = model._fitted().hp
    metrics = getattr(model, "metrics_", None) or {}
    task = "regression (mean squared error)" if hp.is_regression else f"classification into {hp.num_classes} classes (softmax)"
    sides = []
    for side in (0, 1):
        cfg = hp.encoder(side)
        sides.append(f"| in{side} | {cfg.network} | {cfg.vocab_size:,} | {cfg.max_seq_len} |")
    lines = [
        "---",
        "library_name: object2vec",
        "tags:",
        "- object2vec",
        "- embeddings",
        "- pair-classification" if not hp.is_regression else "- pair-regression",
        "---",
        "",
        "# Object2Vec model",
        "",
        f"An object2vec model (SageMaker Object2Vec's network, trained with "
        f"PyTorch): two encoders map each side of a pair to a {hp.enc_dim}-dimensional embedding; the comparator "
        f"({', '.join(hp.comparator_list)}) and an MLP score the pair: {task}.",
        "",
        "## Data shape",
        "",
        'Each pair is `{"in0": [token ids], "in1": [token ids]}`'
        + ("" if model._text is None else " or raw strings (the vocabulary is included)")
        + ".",
        "",
        "| side | encoder | vocabulary | max_seq_len |",
        "|---|---|---:|---:|",
        *sides,
        "",
        "## Metrics",
        "",
        *_metric_lines(metrics),
        "",
        "## Hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in hp.to_dict(as_strings=True).items()),
        "",
        "## How to use",
        "",
        "```python",
        "from object2vec import Object2Vec  # pip install 'object2vec[hub]'",
        "",
        'model = Object2Vec.from_pretrained("REPO_ID")',
        'scores = model.predict([{"in0": [1, 2], "in1": [3]}])',
        "vectors = model.embed(in0=[[1, 2], [4]])",
        "```",
        "",
        "Or serve it as a SageMaker-compatible endpoint: download the folder and run `object2vec serve FOLDER`.",
        "",
        f"Written by object2vec {__version__}.",
        "",
    ]
    return "\n".join(lines)


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    epochs = metrics.get("epochs") or []
    best = metrics.get("best_epoch")
    rows = []
    record = next((e for e in epochs if e.get("epoch") == best), epochs[-1] if epochs else None)
    for split in ("train", "validation"):
        for name, value in ((record or {}).get(split) or {}).items():
            rows.append(f"| {split} | {name} | {value:.4f} |")
    for name, value in (metrics.get("test") or {}).items():
        rows.append(f"| test | {name} | {value:.4f} |")
    if not rows:
        return ["No metrics were recorded."]
    head = f"Epoch {best} of {len(epochs)} (the best on validation, restored)." if best else ""
    return [head, "", "| split | metric | value |", "|---|---|---:|", *rows]
