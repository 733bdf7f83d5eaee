"""``Object2Vec``: the scikit-learn-style front door to training, scoring and embedding.

``Object2Vec(**hyperparameters)`` only stores its arguments. :meth:`Object2Vec.fit` validates the
hyperparameters and *all* data splits before the first step, trains, and sets the learned attributes
(``model_``, ``hyperparameters_``, ``history_``); it returns ``self``. Methods that need a trained
model refuse to run before ``fit`` or :meth:`Object2Vec.load`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import model_folder, reporting
from .data.inputs import as_records, as_source, is_labels
from .data.pairs import PairData, Schema, Side, Source, read_pairs
from .data.sampling import Batch
from .errors import DataError, DeviceError, NotFittedError, Object2VecError, Problem
from .hyperparameters import Hyperparameters
from .nn.model import Object2VecNet, pair_scores
from .text.auxiliary import AuxiliaryChannel
from .text.tokenize import TextCodec, read_text_pairs
from .training import distributed
from .training.batches import batch_inputs, sequential_batches, side_tensors, side_weights
from .training.callbacks import Callback
from .training.loop import fit
from .training.metrics import EVAL_BATCH_SIZE, evaluate, loss_of
from .training.precision import resolve_precision
from .training.resources import check_memory

logger = logging.getLogger(__name__)

Sequences = Sequence[Sequence[int] | str]
_RUN_OPTIONS = ("seed", "device", "precision", "cache")  # constructor arguments that are not hyperparameters


DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` means CUDA when available, else CPU; a device this machine lacks is one clear error,
    with what it has, rather than a failure somewhere inside PyTorch.

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
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {str(device)!r} is not a device name; expected {DEVICES}") from None
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
    elif resolved.type != "cpu":
        raise DeviceError(f"device {str(device)!r} is not supported; expected {DEVICES}")
    return resolved


def check_seed(seed: Any) -> int:
    """Seeds are ints in [0, 2**63): what numpy's and torch's generators both accept."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise Object2VecError(f"seed must be an int in [0, 2**63); got {seed!r}")
    return seed


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
        cache: keep a binary copy of parsed training files (``object2vec.files.cache_dir()``), so the
            next run on an unchanged file skips JSON parsing (keyed by the file's bytes and checked on
            every load: :mod:`object2vec.data.cache`).
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
        clash = sorted(name for name in hyperparameters if hasattr(type(self), name))
        if clash:
            raise TypeError(f"Object2Vec() got {', '.join(map(repr, clash))}: not hyperparameters (they name its methods)")
        vars(self).update(hyperparameters)  # one attribute per parameter, as scikit-learn expects

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters given (not yet resolved or checked: ``fit`` does that)."""
        return {k: v for k, v in vars(self).items() if k not in _RUN_OPTIONS and not k.startswith("_") and not k.endswith("_")}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, as scikit-learn's ``clone``, ``GridSearchCV`` and ``Pipeline`` read them
        (``deep`` is accepted for the protocol: an Object2Vec holds no nested estimators)."""
        return {
            "seed": self.seed,
            "device": self.device,
            "precision": self.precision,
            "cache": self.cache,
            **self.hyperparameters,
        }

    def set_params(self, **params: Any) -> Object2Vec:
        """Set constructor arguments (any hyperparameter too); checked when ``fit`` runs. Returns ``self``."""
        for name, value in params.items():
            if name.startswith("_") or name.endswith("_") or hasattr(type(self), name):
                raise ValueError(f"{name!r} is not a parameter of Object2Vec (fitted attributes end with '_')")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return f"Object2Vec({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def __sklearn_tags__(self) -> Any:
        """scikit-learn >= 1.6 asks estimators for their tags: pairs of token ids, not a numeric matrix."""
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False), requires_fit=True)

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
        y: Any = None,
        callbacks: Sequence[Callback] = (),
    ) -> Object2Vec:
        """Train on ``train`` (path, folder, ``.jsonl.gz``, records, a DataFrame, an ``(n, 2)`` id array:
        :mod:`object2vec.data.inputs`); returns ``self``.

        scikit-learn style ``fit(X, y)`` works too: labels given as ``y=`` (or as a 1-D array in
        ``validation``'s place, which is how scikit-learn passes them) become the records' labels.

        ``validation`` drives early stopping and best-epoch restore; ``test`` is scored once at the
        end. Every split is read and validated before training starts. ``auxiliary`` is SageMaker's
        auxiliary channel: the folder holding the files that ``enc*_vocab_file`` and
        ``enc*_pretrained_embedding_file`` name (and ``tokenization.json`` from ``object2vec
        prepare``); it is a data location, so it is given here rather than to the constructor.
        A model trained with a vocabulary also reads raw strings in ``predict``/``embed``/``evaluate``.
        ``max_steps`` stops after that many optimizer steps (a smoke test). ``checkpoint_dir``,
        ``checkpoint_every``, ``resume``, ``on_step`` and ``callbacks`` (told about each epoch, see
        :mod:`object2vec.training.callbacks`) are passed to :func:`object2vec.training.loop.fit`.

        Under ``torchrun`` every rank reads only its shard of each split and all ranks end with the
        same weights (``docs/distributed.md``).
        """
        if y is None and validation is not None and is_labels(validation):  # fit(X, y), scikit-learn's call
            validation, y = None, validation
        train, validation, test = as_source(train, y), as_source(validation), as_source(test)
        hp = Hyperparameters.from_dict(self.hyperparameters)
        check_seed(self.seed)
        resolve_precision(self.precision, resolve_device(self.device))  # refuse a bad option before reading data
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hp = hp.resolve()
        for w in caught:
            logger.warning(str(w.message))
            warnings.warn(w.message, stacklevel=2)
        if (forced := _forced_token_dims(hp)) and reporting.is_main_process():
            logger.info(forced)
        channel = AuxiliaryChannel.open(hp, auxiliary)  # cheap checks of every named file, before any data
        schema = Schema.from_hyperparameters(hp)
        device = distributed.setup(resolve_device(self.device))
        ctx = distributed.context()
        # refuse a model that cannot fit before reading any data, and again once the data holds its share
        distributed.on_main(lambda: check_memory(hp, device, validation=validation is not None))
        splits = {}
        problems: list[Problem] = []
        count = 0
        for name, source in (("train", train), ("validation", validation), ("test", test)):
            if source is None:
                continue
            try:
                splits[name] = read_pairs(source, schema, cache=self.cache, shard=(ctx.rank, ctx.world_size))
            except DataError as e:  # report every split's problems together
                problems += e.found
                count += e.count
        reports = distributed.gather_objects((problems, count))  # every rank stops if any rank found a problem
        if sum(c for _, c in reports):
            raise DataError([p for shown, _ in reports for p in shown], sum(c for _, c in reports))
        data_bytes = sum(split.nbytes for split in splits.values())
        distributed.on_main(lambda: check_memory(hp, device, validation=validation is not None, data_bytes=data_bytes))
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
            callbacks=callbacks,
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

    def evaluate(self, data: Source, y: Any = None) -> dict[str, float]:
        """SageMaker's metrics on labelled pairs: accuracy and cross_entropy, or mean_squared_error and rmse.

        Like ``predict``, takes raw strings as ``in0``/``in1`` when the model has a vocabulary, and
        every form of pairs ``fit`` takes (``y=``: the labels, scikit-learn style).
        """
        net = self._fitted()
        data = as_source(data, y)
        return evaluate(net, read_text_pairs(data, Schema.from_hyperparameters(net.hp), self._text), self._device)

    def score(self, data: Source, y: Any = None) -> float:
        """Higher is better (scikit-learn convention): accuracy, or minus the mean squared error (for an
        embedding objective without SageMaker's, minus its loss)."""
        metrics = self.evaluate(data, y)
        if "accuracy" in metrics:
            return metrics["accuracy"]
        return -metrics["mean_squared_error" if "mean_squared_error" in metrics else loss_of(self._fitted().hp)]

    @torch.inference_mode()
    def predict(self, pairs: Source, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
        """Scores of pairs: softmax probabilities ``(n, num_classes)``, or ``(n, 1)`` for regression.

        A model trained with ``objective=cosine`` or ``contrastive`` (no output layer) scores a pair by
        the cosine of its two encodings, ``(n, 1)`` in ``[-1, 1]``.

        ``in0``/``in1`` are lists of token ids or, for a model trained with ``enc*_vocab_file``, raw
        strings (``{"in0": "a sentence", "in1": [4, 2]}``), tokenized exactly as in training
        (:mod:`object2vec.text.tokenize`).
        """
        net = self._fitted()
        data = read_text_pairs(as_source(pairs), Schema.from_hyperparameters(net.hp), self._text, require_label=False)
        out = []
        for batch in sequential_batches(data, batch_size):
            out.append(pair_scores(net(*batch_inputs(data, batch, self._device)), net.hp).float().cpu().numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def embed(
        self,
        in0: Sequences | None = None,
        in1: Sequences | None = None,
        batch_size: int = EVAL_BATCH_SIZE,
        normalize: bool = False,
        weights: Sequence[Sequence[float]] | None = None,
    ) -> np.ndarray:
        """Encoder vectors ``(n, enc_dim)`` (float32) for token sequences of one side.

        Pass exactly one of ``in0`` (through enc0) or ``in1`` (through enc1). Items are lists of token
        ids or, for a model trained with a vocabulary, raw strings. ``normalize`` scales each vector
        to length 1 (a zero vector stays zero), so inner products are cosines. ``weights``: each id
        list's per-token weights, for a side pooled by a weighted mean (``encX_pooling=weighted_mean``;
        strings get theirs from the model's text features).
        """
        net = self._fitted()
        if (in0 is None) == (in1 is None):
            raise ValueError("embed takes exactly one of in0=... or in1=...")
        side_name = "in0" if in0 is not None else "in1"
        seqs = in0 if in0 is not None else in1
        listed = [{side_name: s} for s in seqs]  # type: ignore[union-attr]
        if weights is not None:
            listed = [{**r, f"{side_name}_weights": w} for r, w in zip(listed, weights, strict=True)]
        records = as_records(listed)
        data = read_text_pairs(records, Schema.from_hyperparameters(net.hp), self._text, require_label=False, sides=(side_name,))
        side: Side = data.in0 if side_name == "in0" else data.in1
        index = 0 if side_name == "in0" else 1
        out = []
        for start in range(0, len(side), batch_size):
            idx = np.arange(start, min(start + batch_size, len(side)))
            rows = side_weights(side, idx, self._device)
            vectors = net.encode(index, *side_tensors(side, idx, self._device), rows).float()
            out.append((torch.nn.functional.normalize(vectors, dim=1) if normalize else vectors).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, net.hp.enc_dim), np.float32)

    # ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model folder (see :mod:`object2vec.model_folder`)."""
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

    # ---------------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """:meth:`save` plus a ``README.md`` model card, ready for the Hugging Face Hub (:mod:`object2vec.hub`)."""
        from .hub import save_pretrained

        save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, device: str = "auto", **download: Any) -> Object2Vec:
        """Load a model folder, or a Hugging Face Hub repository id (downloaded with ``huggingface_hub``;
        ``revision=``, ``token=``, ``cache_dir=`` are passed to ``snapshot_download``)."""
        from .hub import from_pretrained

        return from_pretrained(cls, source, device, **download)

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload Object2Vec model", revision: str | None = None) -> str:  # fmt: skip
        """Upload the model folder and its model card to Hub repository ``repo_id`` (created if needed)."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message, revision=revision)


__all__ = ["Object2Vec", "PairData"]
