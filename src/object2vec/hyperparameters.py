"""Hyperparameters: SageMaker's names, ranges and defaults, declared once.

Each field of :class:`Hyperparameters` carries its constraint as data (``field.metadata``). That one
table drives validation, the CLI options and their help, and ``docs/hyperparameters.md``, so the
three cannot drift. Values may be typed (``enc_dim=64``) or SageMaker strings (``"64"``, ``"True"``,
``"hadamard, concat"``, ``"auto"``); both go through the same parser, and every bad field is reported
in one :class:`~object2vec.errors.HyperparameterError`.

Fields marked as *extensions* (``extension=True`` in the table) are not SageMaker's: they are off by
default, listed apart in ``object2vec hyperparameters`` and the docs, and at their defaults a
configuration trains exactly as SageMaker's does.

``enc1_*`` fields default to ``None`` ("not set"). With ``enc1_network="enc0"`` (the default) the
second encoder copies enc0's settings, as SageMaker does; unlike SageMaker we *warn* when a value the
user set explicitly is overridden that way (SageMaker's silent override confused users: an explicit
``enc1_vocab_size=3`` was ignored and training failed on in1's token id 2, aws/sagemaker-python-sdk issue 834).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import HyperparameterError

# --------------------------------------------------------------------------------------------------
# Constraints as data


class Constraint:
    """Parses a typed or string value; ``describe`` is the phrase used in errors, help and docs."""

    def parse(self, value: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def format(self, value: Any) -> str:
        """The value as SageMaker would write it in hyperparameters.json."""
        return str(value)


def _fmt_num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Int(Constraint):
    low: int
    high: int | None = None

    def parse(self, value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str):
            if not re.fullmatch(r"\s*[+-]?\d+\s*", value):
                raise ValueError
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise ValueError
        if value < self.low or (self.high is not None and value > self.high):
            raise ValueError
        return value

    def describe(self) -> str:
        if self.high is None:
            return f"an int >= {_fmt_num(self.low)}"
        return f"an int in [{_fmt_num(self.low)}, {_fmt_num(self.high)}]"


@dataclass(frozen=True)
class Float(Constraint):
    low: float
    high: float

    def parse(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError from None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError
        if not self.low <= value <= self.high:
            raise ValueError
        return float(value)

    def describe(self) -> str:
        if self.low == -math.inf and self.high == math.inf:
            return "a number"
        return f"a number in [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Bool(Constraint):
    def parse(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError

    def describe(self) -> str:
        return "true or false"

    def format(self, value: Any) -> str:
        return "True" if value else "False"


@dataclass(frozen=True)
class Choice(Constraint):
    options: tuple[str, ...]

    def parse(self, value: Any) -> str:
        if isinstance(value, str) and value.strip() in self.options:
            return value.strip()
        raise ValueError

    def describe(self) -> str:
        return "one of " + ", ".join(self.options)


@dataclass(frozen=True)
class Layers(Constraint):
    """``"auto"`` (hcnn: 4, bilstm: 1, pooled_embedding: ignored) or an int in [1, 4]."""

    def parse(self, value: Any) -> int | str:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return Int(1, 4).parse(value)

    def describe(self) -> str:
        return "auto or an int in [1, 4]"


COMPARATORS = ("hadamard", "concat", "abs_diff")


@dataclass(frozen=True)
class Comparators(Constraint):
    """A non-empty, duplicate-free list of comparator names; order is kept (it orders the output)."""

    def parse(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError
        if any(v not in COMPARATORS for v in value) or len(set(value)) != len(value):
            raise ValueError
        return tuple(value)

    def describe(self) -> str:
        return "a comma-separated list of distinct names from hadamard, concat, abs_diff (order kept)"

    def format(self, value: Any) -> str:
        return ", ".join(value)


@dataclass(frozen=True)
class FileName(Constraint):
    """A bare file name in the auxiliary channel, as SageMaker allows: ``[A-Za-z0-9._]``, or empty."""

    def parse(self, value: Any) -> str:
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._]*", value):
            return value
        raise ValueError

    def describe(self) -> str:
        return "a file name of letters, digits, '.' and '_' (empty for none)"


REQUIRED = object()  # marks a hyperparameter with no default that must be given
UNSET = None  # an enc1_* value the user did not set


def _hp(constraint: Constraint, default: Any, doc: str, *, required: bool = False, extension: bool = False) -> Any:
    """One row of the hyperparameter table, stored on the dataclass field itself.

    ``extension`` marks a hyperparameter SageMaker's Object2Vec does not have: its default must leave
    SageMaker's behaviour unchanged.
    """
    return field(
        default=None if required else default,
        kw_only=True,
        metadata={"constraint": constraint, "default": REQUIRED if required else default, "doc": doc, "extension": extension},
    )


def _enc1(constraint: Constraint, default: Any, doc: str, *, extension: bool = False) -> Any:
    """An ``enc1_*`` field: unset (None) unless given; resolves to enc0's value or ``default``."""
    return field(
        default=None,
        kw_only=True,
        metadata={"constraint": constraint, "default": default, "doc": doc, "inherits": True, "extension": extension},
    )


NETWORKS = ("hcnn", "bilstm", "pooled_embedding")
# What training minimises (an extension): SageMaker's output-layer loss, an objective on the cosine of
# the two encodings, or both ("sagemaker+..."), see object2vec.training.objectives
OBJECTIVES = ("sagemaker", "cosine", "contrastive", "sagemaker+cosine", "sagemaker+contrastive")
# How pooled_embedding joins its token vectors (an extension; SageMaker's is the mean), see object2vec.nn.encoders
POOLINGS = ("mean", "sum", "max", "weighted_mean")
OPTIMIZERS = ("adam", "adagrad", "rmsprop", "sgd", "adadelta")
ROW_SPARSE_OPTIMIZERS = ("adam", "adagrad", "sgd")
AUTO_LAYERS = {"hcnn": 4, "bilstm": 1, "pooled_embedding": 1}
ENCODER_KEYS = (
    "network",
    "max_seq_len",
    "vocab_size",
    "layers",
    "cnn_filter_width",
    "token_embedding_dim",
    "freeze_pretrained_embedding",
    "pretrained_embedding_file",
    "vocab_file",
    "pooling",
)
# Keys SageMaker itself puts in hyperparameters.json, accepted and ignored: every key starting with "_"
# (tuning jobs add _tuning_objective_metric; notebooks pass MXNet's _kvstore, _num_gpus, _num_kv_servers)
# and the SageMaker SDK's "sagemaker_" namespace (a tuner with include_cls_metadata, or a framework
# estimator, adds sagemaker_estimator_class_name and sagemaker_estimator_module).
IGNORED_PREFIXES = ("_", "sagemaker_")


def sagemaker_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``values`` that SageMaker adds on its own (ignored as hyperparameters).

    >>> sagemaker_keys({"enc_dim": "64", "_tuning_objective_metric": "validation:accuracy"})
    {'_tuning_objective_metric': 'validation:accuracy'}
    """
    return {k: v for k, v in values.items() if isinstance(k, str) and k.startswith(IGNORED_PREFIXES)}


@dataclass(frozen=True)
class EncoderConfig:
    """The resolved settings of one encoder (``enc0_*`` or ``enc1_*`` without the prefix)."""

    network: str
    max_seq_len: int
    vocab_size: int
    layers: int
    cnn_filter_width: int
    token_embedding_dim: int
    freeze_pretrained_embedding: bool
    pretrained_embedding_file: str
    vocab_file: str
    pooling: str = "mean"


@dataclass(frozen=True)
class Hyperparameters:
    """Every Object2Vec hyperparameter, with SageMaker's names, ranges and defaults.

    Construct with typed values or strings; all fields are checked at once.

    >>> hp = Hyperparameters(enc0_max_seq_len="10", enc0_vocab_size=100, enc_dim=8)
    >>> hp.enc_dim, hp.comparator_list
    (8, ('hadamard', 'concat', 'abs_diff'))
    >>> hp.resolve().encoder(1).vocab_size  # enc1_network=enc0 copies enc0's settings
    100
    """

    # -- encoders: shape of the input
    enc0_max_seq_len: int = _hp(Int(1, 5000), None, "Maximum tokens read from in0; longer inputs are truncated.", required=True)
    enc0_vocab_size: int = _hp(Int(2, 3_000_000), None, "Number of in0 token ids; every id must be < this.", required=True)
    enc1_max_seq_len: int | None = _enc1(
        Int(1, 5000), REQUIRED, "Maximum tokens read from in1 (required unless enc1_network=enc0)."
    )
    enc1_vocab_size: int | None = _enc1(
        Int(2, 3_000_000), REQUIRED, "Number of in1 token ids (required unless enc1_network=enc0)."
    )
    # -- encoders: architecture
    enc0_network: str = _hp(Choice(NETWORKS), "hcnn", "Encoder of in0.")
    enc1_network: str = _hp(
        Choice(("enc0", *NETWORKS)), "enc0", "Encoder of in1; enc0 copies enc0's network and settings (not its weights)."
    )
    enc0_layers: int | str = _hp(Layers(), "auto", "Encoder layers; auto = hcnn 4, bilstm 1 (ignored by pooled_embedding).")
    enc1_layers: int | str | None = _enc1(Layers(), "auto", "As enc0_layers, for enc1.")
    enc0_cnn_filter_width: int = _hp(Int(1, 9), 3, "hcnn convolution width.")
    enc1_cnn_filter_width: int | None = _enc1(Int(1, 9), 3, "As enc0_cnn_filter_width, for enc1.")
    enc0_token_embedding_dim: int = _hp(Int(2, 1000), 300, "Token embedding size (pooled_embedding forces it to enc_dim).")
    enc1_token_embedding_dim: int | None = _enc1(Int(2, 1000), 300, "As enc0_token_embedding_dim, for enc1.")
    enc0_vocab_file: str = _hp(
        FileName(), "", "JSON word -> id map in the auxiliary channel, for pretrained vectors and text input."
    )
    enc1_vocab_file: str | None = _enc1(FileName(), "", "As enc0_vocab_file, for enc1.")
    enc0_pretrained_embedding_file: str = _hp(
        FileName(),
        "",
        "GloVe or word2vec text vectors (.gz ok) in the auxiliary channel; vocabulary words found start from them.",
    )
    enc1_pretrained_embedding_file: str | None = _enc1(FileName(), "", "As enc0_pretrained_embedding_file, for enc1.")
    enc0_freeze_pretrained_embedding: bool = _hp(
        Bool(), True, "Keep the rows taken from the pretrained file fixed; the other rows still train."
    )
    enc1_freeze_pretrained_embedding: bool | None = _enc1(Bool(), True, "As enc0_freeze_pretrained_embedding, for enc1.")
    enc_dim: int = _hp(Int(4, 10000), 4096, "Size of each encoder's output vector.")
    tied_token_embedding_weight: bool = _hp(
        Bool(), False, "Share the token embedding table between enc0 and enc1 (same vocabulary)."
    )
    token_embedding_storage_type: str = _hp(
        Choice(("dense", "row_sparse")), "dense", "row_sparse updates only the embedding rows a batch touched."
    )
    # -- comparator, MLP, output
    comparator_list: tuple[str, ...] = _hp(Comparators(), COMPARATORS, "How the two encodings are joined, in this order.")
    mlp_layers: int = _hp(Int(0, 10), 2, "Hidden layers between comparator and output.")
    mlp_dim: int = _hp(Int(2, 10000), 512, "Width of each MLP layer.")
    mlp_activation: str = _hp(Choice(("tanh", "relu", "linear")), "linear", "MLP activation (linear = none).")
    output_layer: str = _hp(
        Choice(("softmax", "mean_squared_error")), "softmax", "softmax: classification; mean_squared_error: regression."
    )
    num_classes: int = _hp(Int(2, 30), 2, "Classes for softmax (ignored for regression).")
    dropout: float = _hp(Float(0.0, 1.0), 0.0, "Dropout probability on encoder outputs and MLP layers.")
    # -- optimisation
    optimizer: str = _hp(Choice(OPTIMIZERS), "adam", "Optimizer.")
    learning_rate: float = _hp(Float(1e-6, 1.0), 0.0004, "Learning rate.")
    weight_decay: float = _hp(Float(0.0, 10000.0), 0.0, "L2 weight decay added to the gradient.")
    mini_batch_size: int = _hp(Int(1, 10000), 32, "Pairs per training step.")
    epochs: int = _hp(Int(1, 100), 30, "Maximum passes over the training data.")
    early_stopping_patience: int = _hp(Int(1, 5), 3, "Epochs without improvement of the validation loss before stopping.")
    early_stopping_tolerance: float = _hp(Float(1e-6, 0.1), 0.01, "Validation-loss reduction that counts as an improvement.")
    negative_sampling_rate: int = _hp(Int(0), 0, "Negatives (label 0) drawn per positive pair each epoch; 0 = off.")
    bucket_width: int = _hp(Int(0, 100), 0, "Batch pairs whose lengths differ by at most this; 0 = off.")
    # -- extensions: objectives that shape the embedding space (docs/objectives.md)
    objective: str = _hp(
        Choice(OBJECTIVES),
        "sagemaker",
        "What training minimises: sagemaker = the output layer's loss; cosine = the cosine of the two encodings fitted to "
        "the scaled label; contrastive = in-batch negatives (label 1 = positive pair); sagemaker+X = both, weighted. "
        "Without the sagemaker part the model has no MLP and its pair score is the cosine.",
        extension=True,
    )
    objective_weight: float = _hp(
        Float(0.0, 1000.0),
        1.0,
        "sagemaker+X: weight of the cosine or contrastive loss added to the output layer's.",
        extension=True,
    )
    cosine_label_min: float = _hp(
        Float(-math.inf, math.inf),
        0.0,
        "cosine objectives: the label fitted by cosine 0 (target = scaled to [0, 1]).",
        extension=True,
    )
    cosine_label_max: float = _hp(
        Float(-math.inf, math.inf), 1.0, "cosine objectives: the label that cosine 1 stands for.", extension=True
    )
    contrastive_temperature: float = _hp(
        Float(0.001, 10.0), 0.05, "contrastive objectives: softmax temperature over cosines (0.05 = scale 20).", extension=True
    )
    contrastive_symmetric: bool = _hp(
        Bool(), False, "contrastive objectives: also rank each in1 against every in0 of the batch.", extension=True
    )
    contrastive_hard_negatives: bool = _hp(
        Bool(),
        False,
        "contrastive objectives: the in1 of label-0 pairs join the candidates (pure contrastive: each positive brings a "
        "label-0 pair of the same in0 into its batch).",
        extension=True,
    )
    contrastive_logq_correction: bool = _hp(
        Bool(),
        False,
        "contrastive objectives: subtract log(frequency of each in1 among training positives) from its in-batch logit, so "
        "popular items are not over-penalised as negatives (retrieval by cosine then ranks by P(in1 given in0)).",
        extension=True,
    )
    # -- extensions: text classification (docs/text_classification.md)
    enc0_pooling: str = _hp(
        Choice(POOLINGS),
        "mean",
        "pooled_embedding: how token vectors are joined: mean (SageMaker's), sum, max (per dimension), or weighted_mean "
        "(each token's weight from the record's in0_weights).",
        extension=True,
    )
    enc1_pooling: str | None = _enc1(
        Choice(POOLINGS), "mean", "As enc0_pooling, for enc1 (weights from in1_weights).", extension=True
    )
    mini_batch_tokens: int = _hp(
        Int(0, 10_000_000),
        0,
        "Cut batches by tokens (in0 + in1, after truncation) instead of pairs: each batch holds at most this many, "
        "mini_batch_size still caps its pairs; 0 = off.",
        extension=True,
    )
    negative_sampling_distinct: bool = _hp(
        Bool(),
        False,
        "Draw a negative again while its in1 equals its positive's (StarSpace's negatives: a label is never its own negative).",
        extension=True,
    )
    negative_sampling_grouped: bool = _hp(
        Bool(),
        False,
        "Train each positive pair and its negatives in one batch, in0 encoded once for all of them (StarSpace's "
        "training; the label-pair path runs several times faster).",
        extension=True,
    )

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                if f.metadata["default"] is REQUIRED and not f.metadata.get("inherits"):
                    problems.append(f"{f.name} is required ({f.metadata['constraint'].describe()}); it was not given.")
                elif not f.metadata.get("inherits"):  # only enc1_* use None, for "not set"
                    problems.append(_bad(f, value))
                continue
            try:
                object.__setattr__(self, f.name, f.metadata["constraint"].parse(value))
            except (ValueError, TypeError):
                problems.append(_bad(f, value))
        if problems:
            raise HyperparameterError(problems)

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Build from a mapping such as SageMaker's ``hyperparameters.json`` (all-string values).

        Unknown names are errors (with a suggestion); the keys SageMaker adds on its own (any name
        starting with ``_`` or ``sagemaker_``, see :func:`sagemaker_keys`) are accepted and ignored.
        """
        known = {f.name for f in fields(cls)}
        problems = []
        kwargs = {}
        nulls: set[str] = set()
        ignored = sagemaker_keys(values)
        for key, value in values.items():
            if key in ignored:
                continue
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                problems.append(f"{key} is not an Object2Vec hyperparameter" + (f"; did you mean {hint[0]}?" if hint else "."))
                continue
            if value is None:  # JSON null: neither a value nor "unset" (leave the name out for that)
                f = next(f for f in fields(cls) if f.name == key)
                required = f.metadata["default"] is REQUIRED and not f.metadata.get("inherits")
                advice = "it is required" if required else "leave it out to use the default"
                problems.append(f"{key} is null; expected {f.metadata['constraint'].describe()} ({advice}).")
                nulls.add(key)
                continue
            kwargs[key] = value
        try:
            hp = cls(**kwargs)
        except HyperparameterError as e:
            rest = [p for p in e.problems if not any(p.startswith(f"{key} is required") for key in nulls)]
            raise HyperparameterError(problems + rest) from None
        if problems:
            raise HyperparameterError(problems)
        return hp

    def to_dict(self, *, as_strings: bool = False) -> dict[str, Any]:
        """All fields; with ``as_strings`` in SageMaker's ``hyperparameters.json`` form."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if as_strings:
                out[f.name] = f.metadata["constraint"].format(value)
            else:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> Hyperparameters:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------------------------------------
    def resolve(self) -> Hyperparameters:
        """Apply SageMaker's implicit rules and check fields against each other.

        * ``enc1_network=enc0`` copies every enc0 setting to enc1 (a :class:`UserWarning` names each
          explicitly set ``enc1_*`` value that this overrides);
        * unset ``enc1_*`` values take their documented defaults;
        * ``layers=auto`` becomes hcnn 4, bilstm 1, pooled_embedding 1;
        * ``pooled_embedding`` has no projection, so :meth:`encoder` reports ``enc_dim`` as its token
          dimension (the field itself keeps its value, which may exceed the 1000 limit of the field).

        The result has concrete values only, so resolving it again changes nothing.
        """
        import warnings

        problems: list[str] = []
        changes: dict[str, Any] = {}
        if self.enc1_network == "enc0":
            overridden = []
            for key in ENCODER_KEYS:
                mine, theirs = getattr(self, f"enc1_{key}"), getattr(self, f"enc0_{key}")
                if key != "network" and mine is not None and mine != theirs:
                    overridden.append(f"enc1_{key}={mine!r} (using enc0_{key}={theirs!r})")
                changes[f"enc1_{key}"] = theirs
            if overridden:
                warnings.warn(
                    "enc1_network=enc0 copies enc0's settings, so these explicitly set values are ignored: "
                    + "; ".join(overridden)
                    + ". Set enc1_network to hcnn, bilstm or pooled_embedding to use them.",
                    UserWarning,
                    stacklevel=2,
                )
        else:
            for f in fields(self):
                if f.metadata.get("inherits") and getattr(self, f.name) is None:
                    if f.metadata["default"] is REQUIRED:
                        problems.append(
                            f"{f.name} is required when enc1_network={self.enc1_network} "
                            f"({f.metadata['constraint'].describe()}); it was not given."
                        )
                    else:
                        changes[f.name] = f.metadata["default"]
        if problems:
            raise HyperparameterError(problems)
        hp = dataclasses.replace(self, **changes)
        for side in (0, 1):
            net = getattr(hp, f"enc{side}_network")
            layers = getattr(hp, f"enc{side}_layers")
            if layers == "auto" or net == "pooled_embedding":
                changes[f"enc{side}_layers"] = AUTO_LAYERS[net]
        hp = dataclasses.replace(hp, **changes)
        hp._check_combinations()
        return hp

    def _check_combinations(self) -> None:
        problems = []
        if self.tied_token_embedding_weight:
            if self.enc0_vocab_size != self.enc1_vocab_size:
                problems.append(
                    "tied_token_embedding_weight=True shares one token table, so enc0_vocab_size and "
                    f"enc1_vocab_size must be equal; got {self.enc0_vocab_size} and {self.enc1_vocab_size}."
                )
            dims = self.encoder(0).token_embedding_dim, self.encoder(1).token_embedding_dim
            if dims[0] != dims[1]:
                problems.append(
                    f"tied_token_embedding_weight=True needs equal token embedding sizes; got {dims[0]} (enc0) "
                    f"and {dims[1]} (enc1) (pooled_embedding uses enc_dim)."
                )
        if self.token_embedding_storage_type == "row_sparse" and self.optimizer not in ROW_SPARSE_OPTIMIZERS:
            problems.append(
                f"token_embedding_storage_type=row_sparse supports optimizer {', '.join(ROW_SPARSE_OPTIMIZERS)}; "
                f"got {self.optimizer}. Use one of those or token_embedding_storage_type=dense."
            )
        seen = set()
        for side in (0, 1):
            network, pooling = getattr(self, f"enc{side}_network"), getattr(self, f"enc{side}_pooling")
            if pooling != "mean" and network != "pooled_embedding" and (network, pooling) not in seen:
                seen.add((network, pooling))  # enc1_network=enc0 copied enc0's: one problem, named once
                problems.append(
                    f"enc{side}_pooling={pooling} joins pooled_embedding's token vectors; enc{side}_network={network} "
                    f"has its own pooling. Use enc{side}_network=pooled_embedding or enc{side}_pooling=mean."
                )
        for name in ("negative_sampling_distinct", "negative_sampling_grouped"):
            if getattr(self, name) and not self.negative_sampling_rate:
                problems.append(
                    f"{name}=True changes how negatives are drawn, but negative_sampling_rate=0 draws none; "
                    "set negative_sampling_rate > 0."
                )
        if self.negative_sampling_rate and self.is_regression:
            problems.append(
                f"negative_sampling_rate={self.negative_sampling_rate} labels drawn pairs as class 0, so it needs "
                "output_layer=softmax; got output_layer=mean_squared_error."
            )
        if self.embedding_objective == "contrastive" and self.is_regression:
            problems.append(
                f"objective={self.objective} reads label 1 as a positive pair and label 0 as a negative, so it needs "
                "output_layer=softmax; got output_layer=mean_squared_error."
            )
        if self.objective == "contrastive" and self.negative_sampling_rate:
            problems.append(
                f"objective=contrastive trains on in-batch negatives, so negative_sampling_rate={self.negative_sampling_rate} "
                "would only add pairs it ignores; set negative_sampling_rate=0 (or use objective=sagemaker+contrastive)."
            )
        if self.embedding_objective == "cosine" and not self.cosine_label_min < self.cosine_label_max:
            problems.append(
                f"cosine_label_min must be below cosine_label_max; got {self.cosine_label_min:g} and {self.cosine_label_max:g}."
            )
        if problems:
            raise HyperparameterError(problems)

    def encoder(self, side: int) -> EncoderConfig:
        """The settings of encoder ``side`` (0 or 1); call on a resolved instance."""
        if self.enc1_network == "enc0" or getattr(self, f"enc{side}_layers") == "auto":
            return self.resolve().encoder(side)
        values = {k: getattr(self, f"enc{side}_{k}") for k in ENCODER_KEYS}
        if values["network"] == "pooled_embedding":
            values["token_embedding_dim"] = self.enc_dim  # SageMaker forces it: mean pooling has no projection
        return EncoderConfig(**values)

    @property
    def is_regression(self) -> bool:
        return self.output_layer == "mean_squared_error"

    @property
    def output_dim(self) -> int:
        return 1 if self.is_regression else self.num_classes

    @property
    def has_head(self) -> bool:
        """Whether the model has SageMaker's comparator, MLP and output layer (every objective but
        ``cosine`` and ``contrastive`` alone, whose pair score is the cosine of the two encodings)."""
        return self.objective.startswith("sagemaker")

    @property
    def embedding_objective(self) -> str | None:
        """``cosine``, ``contrastive`` or None: the objective on the encodings themselves."""
        name = self.objective.removeprefix("sagemaker").removeprefix("+")
        return name or None


def _bad(f: dataclasses.Field, value: Any) -> str:
    return f"{f.name} must be {f.metadata['constraint'].describe()}; got {value!r}."


def hyperparameter_table() -> list[dict[str, Any]]:
    """Rows of (name, valid values, default, description, extension): the source of CLI help and docs."""
    rows = []
    for f in fields(Hyperparameters):
        default = f.metadata["default"]
        if default is REQUIRED:
            shown = "required" if not f.metadata.get("inherits") else "required unless enc1_network=enc0"
        else:
            shown = f.metadata["constraint"].format(default)
            if shown == "":
                shown = '""'
            if f.metadata.get("inherits"):
                shown = f"enc0's value if enc1_network=enc0, else {shown}"
        rows.append(
            {
                "name": f.name,
                "valid": f.metadata["constraint"].describe(),
                "default": shown,
                "doc": f.metadata["doc"],
                "extension": bool(f.metadata.get("extension")),
            }
        )
    return rows


def hyperparameters_markdown() -> str:
    """The table as Markdown; ``docs/hyperparameters.md`` is this text (a test keeps them equal)."""
    lines = [
        "# Hyperparameters",
        "",
        "Generated from `object2vec.hyperparameters.Hyperparameters` by `object2vec hyperparameters --markdown`;",
        "do not edit by hand. Names, ranges and defaults follow SageMaker Object2Vec. Values may be",
        "typed (Python) or strings (SageMaker `hyperparameters.json`, CLI `-p name=value`).",
        "Keys SageMaker adds on its own are accepted and ignored (one log line names them): every key",
        "starting with `_` (`_tuning_objective_metric` of tuning jobs; MXNet's `_kvstore`, `_num_gpus`,",
        "`_num_kv_servers`) or with `sagemaker_` (the SDK's `sagemaker_estimator_class_name`, ...).",
        "",
    ]
    header = ["| name | valid values | default | meaning |", "|---|---|---|---|"]
    rows = hyperparameter_table()
    lines += header + [_markdown_row(r) for r in rows if not r["extension"]]
    lines += [
        "",
        "## Extensions",
        "",
        "Not in SageMaker's Object2Vec. Each is off at its default, where a configuration trains exactly as",
        "SageMaker's does; `object2vec hyperparameters` lists them apart.",
        "",
        *header,
        *[_markdown_row(r) for r in rows if r["extension"]],
    ]
    return "\n".join(lines) + "\n"


def _markdown_row(r: dict[str, Any]) -> str:
    return f"| `{r['name']}` | {r['valid']} | {r['default']} | {r['doc']} |"
