"""``Object2Vec``: the scikit-learn-style front door to training, scoring and embedding.

``Object2Vec(**hyperparameters)`` only stores its arguments. :meth:`Object2Vec.fit` validates the
hyperparameters and *all* data splits before the first step, trains, and sets the learned attributes
(``model_``, ``hyperparameters_``, ``history_``); it returns ``self``. Methods that need a trained
model refuse to run before ``fit`` or :meth:`Object2Vec.load`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import model_folder, reporting
from .data.pairs import PairData, Schema, Side, Source, read_pairs
from .data.sampling import Batch
from .errors import DataError, DeviceError, NotFittedError
from .hyperparameters import Hyperparameters
from .nn.model import Object2VecNet
from .text.auxiliary import AuxiliaryChannel
from .text.tokenize import TextCodec, read_text_pairs
from .training import distributed
from .training.batches import sequential_batches, side_tensors
from .training.loop import fit
from .training.metrics import EVAL_BATCH_SIZE, evaluate
from .training.precision import resolve_precision

Sequences = Sequence[Sequence[int] | str]


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` means CUDA when available, else CPU; a device this machine lacks is one clear error.

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    object2vec.errors.DeviceError: device 'gpu' is not a device name; expected auto, cpu, cuda or cuda:N
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device {str(device)!r} is not a device name; expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceError(
                f"device {str(device)!r}: this machine has no CUDA device that PyTorch can use (torch {torch.__version__}, "
                f"{build}); use --device cpu, or auto to take a GPU only where there is one"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(f"device {str(device)!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return resolved


def _forced_token_dims(hp: Hyperparameters) -> str | None:
    """SageMaker's log line when ``pooled_embedding`` overrides ``token_embedding_dim`` (it has no
    projection, so the token vectors are ``enc_dim`` wide), or ``None`` when nothing was overridden."""
    sides = [
        f"enc{side}_token_embedding_dim={getattr(hp, f'enc{side}_token_embedding_dim')}"
        for side in (0, 1)
        if getattr(hp, f"enc{side}_network") == "pooled_embedding" and getattr(hp, f"enc{side}_token_embedding_dim") != hp.enc_dim
    ]
    if not sides:
        return None
    return (
        f"Inconsistent enc_dim and token embedding dim for pooled_embedding ({', '.join(sides)} vs enc_dim={hp.enc_dim}): "
        f"setting the token embedding dim to {hp.enc_dim}."
    )


class Object2Vec:
    """Learn embeddings of pairs with SageMaker Object2Vec's model and hyperparameters.

    Args:
        seed: makes initialisation, shuffling, negative sampling and dropout repeatable.
        device: ``auto`` (CUDA if present), ``cpu``, ``cuda``, ``cuda:1``, ...
        precision: training arithmetic: ``fp32`` (default), ``bf16``, ``fp16`` (CUDA), or ``auto``
            (bf16 where the hardware has bf16 units). Prediction and evaluation run in fp32.
        cache: keep a binary copy of parsed training files (``object2vec.data.cache_dir()``), so the
            next run on an unchanged file skips JSON parsing.
        **hyperparameters: SageMaker Object2Vec hyperparameters, typed or as strings
            (see ``docs/hyperparameters.md``).

    >>> records = [{"label": i % 2, "in0": [i % 2], "in1": [i % 2]} for i in range(64)]
    >>> model = Object2Vec(enc0_max_seq_len=1, enc0_vocab_size=2, enc0_network="pooled_embedding",
    ...                    enc_dim=8, mlp_dim=8, epochs=20, learning_rate=0.05).fit(records)
    >>> model.predict([{"in0": [1], "in1": [1]}]).argmax(axis=1).tolist()
    [1]
    >>> model.embed(in0=[[0], [1]]).shape
    (2, 8)
    """

    def __init__(
        self, *, seed: int = 0, device: str = "auto", precision: str = "fp32", cache: bool = True, **hyperparameters: Any
    ):
        self.seed = seed
        self.device = device
        self.precision = precision
        self.cache = cache
        self.hyperparameters = hyperparameters

    def get_params(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "device": self.device,
            "precision": self.precision,
            "cache": self.cache,
            **self.hyperparameters,
        }

    # ---------------------------------------------------------------------------------------------
    def fit(
        self,
        train: Source,
        validation: Source | None = None,
        test: Source | None = None,
        *,
        auxiliary: str | os.PathLike | None = None,
        max_steps: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 0,
        resume: bool = False,
        on_step: Callable[[Batch], None] | None = None,
    ) -> Object2Vec:
        """Train on ``train`` (path, folder, ``.jsonl.gz`` or list of records); returns ``self``.

        ``validation`` drives early stopping and best-epoch restore; ``test`` is scored once at the
        end. Every split is read and validated before training starts. ``auxiliary`` is SageMaker's
        auxiliary channel: the folder holding the files that ``enc*_vocab_file`` and
        ``enc*_pretrained_embedding_file`` name (and ``tokenization.json`` from ``object2vec
        prepare``); it is a data location, so it is given here rather than to the constructor.
        A model trained with a vocabulary also reads raw strings in ``predict``/``embed``/``evaluate``.
        ``max_steps`` stops after that many optimizer steps (a smoke test). ``checkpoint_dir``,
        ``checkpoint_every``, ``resume`` and ``on_step`` are passed to :func:`object2vec.train.fit`.

        Under ``torchrun`` every rank reads only its shard of each split and all ranks end with the
        same weights (``docs/distributed.md``).
        """
        hp = Hyperparameters.from_dict(self.hyperparameters)
        resolve_precision(self.precision, resolve_device(self.device))  # refuse a bad option before reading data
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hp = hp.resolve()
        for w in caught:
            reporting.logger.warning(str(w.message))
            warnings.warn(w.message, stacklevel=2)
        if forced := _forced_token_dims(hp):
            reporting.emit(forced)
        channel = AuxiliaryChannel.open(hp, auxiliary)  # cheap checks of every named file, before any data
        schema = Schema.from_hyperparameters(hp)
        device = distributed.setup(resolve_device(self.device))
        ctx = distributed.context()
        splits = {}
        problems: list[str] = []
        count = 0
        for name, source in (("train", train), ("validation", validation), ("test", test)):
            if source is None:
                continue
            try:
                splits[name] = read_pairs(source, schema, cache=self.cache, shard=(ctx.rank, ctx.world_size))
            except DataError as e:  # report every split's problems together
                problems += e.problems
                count += e.count
        reports = distributed.gather_objects((problems, count))  # every rank stops if any rank found a problem
        if sum(c for _, c in reports):
            raise DataError([p for shown, _ in reports for p in shown], sum(c for _, c in reports))
        torch.manual_seed(self.seed)
        net = Object2VecNet(hp)
        channel.initialise(net, hp)
        result = fit(
            net,
            splits["train"],
            splits.get("validation"),
            splits.get("test"),
            seed=self.seed,
            device=device,
            max_steps=max_steps,
            precision=self.precision,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            on_step=on_step,
        )
        self.model_ = net
        self.hyperparameters_ = hp
        self.text_ = channel.codec
        self.history_ = result.history
        self.metrics_ = result.as_dict()
        return self

    # ---------------------------------------------------------------------------------------------
    def _fitted(self) -> Object2VecNet:
        if not hasattr(self, "model_"):
            raise NotFittedError("This Object2Vec model is not trained yet; call fit first (or Object2Vec.load).")
        return self.model_

    @property
    def _device(self) -> torch.device:
        return next(self._fitted().parameters()).device

    @property
    def _text(self) -> TextCodec | None:
        return getattr(self, "text_", None)

    def evaluate(self, data: Source) -> dict[str, float]:
        """SageMaker's metrics on labelled pairs: accuracy and cross_entropy, or mean_squared_error and rmse.

        Like ``predict``, takes raw strings as ``in0``/``in1`` when the model has a vocabulary.
        """
        net = self._fitted()
        return evaluate(net, read_text_pairs(data, Schema.from_hyperparameters(net.hp), self._text), self._device)

    def score(self, data: Source) -> float:
        """Higher is better (scikit-learn convention): accuracy, or minus the mean squared error."""
        metrics = self.evaluate(data)
        return metrics["accuracy"] if "accuracy" in metrics else -metrics["mean_squared_error"]

    @torch.inference_mode()
    def predict(self, pairs: Source, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Scores of pairs: softmax probabilities ``(n, num_classes)``, or ``(n, 1)`` for regression.

        ``in0``/``in1`` are lists of token ids or, for a model trained with ``enc*_vocab_file``, raw
        strings (``{"in0": "a sentence", "in1": [4, 2]}``), tokenized exactly as in training
        (:mod:`object2vec.text`).
        """
        net = self._fitted()
        data = read_text_pairs(pairs, Schema.from_hyperparameters(net.hp), self._text, require_label=False)
        out = []
        for batch in sequential_batches(data, batch_size):
            t0 = side_tensors(data.in0, batch.left, self._device)
            t1 = side_tensors(data.in1, batch.right, self._device)
            y = net(*t0, *t1)
            out.append((y[:, None] if net.hp.is_regression else torch.softmax(y, dim=1)).float().cpu().numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def embed(self, in0: Sequences | None = None, in1: Sequences | None = None, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Encoder vectors ``(n, enc_dim)`` (float32) for token sequences of one side.

        Pass exactly one of ``in0`` (through enc0) or ``in1`` (through enc1). Items are lists of token
        ids or, for a model trained with a vocabulary, raw strings.
        """
        net = self._fitted()
        if (in0 is None) == (in1 is None):
            raise ValueError("embed takes exactly one of in0=... or in1=...")
        side_name = "in0" if in0 is not None else "in1"
        seqs = in0 if in0 is not None else in1
        records = [{side_name: s} for s in seqs]  # type: ignore[union-attr]
        data = read_text_pairs(records, Schema.from_hyperparameters(net.hp), self._text, require_label=False, sides=(side_name,))
        side: Side = data.in0 if side_name == "in0" else data.in1
        index = 0 if side_name == "in0" else 1
        out = []
        for start in range(0, len(side), batch_size):
            idx = np.arange(start, min(start + batch_size, len(side)))
            out.append(net.encode(index, *side_tensors(side, idx, self._device)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, net.hp.enc_dim), np.float32)

    # ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model folder (see :mod:`object2vec.io`)."""
        net = self._fitted()
        text = self._text
        model_folder.save(
            path, net, metrics=getattr(self, "metrics_", None), extra={"seed": self.seed}, assets=text.assets() if text else None
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> Object2Vec:
        """Rebuild a trained model from its folder; predictions are bit-identical to the saved model's."""
        net, metrics = model_folder.load(path, resolve_device(device))
        model = cls(device=device, **net.hp.to_dict())
        model.model_ = net
        model.hyperparameters_ = net.hp
        model.metrics_ = metrics
        model.history_ = metrics.get("epochs", [])
        model.text_ = model_folder.load_text(path, net.hp)
        return model


__all__ = ["Object2Vec", "PairData"]
