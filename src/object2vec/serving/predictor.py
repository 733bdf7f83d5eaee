"""Scores and embeddings for SageMaker-style instances: the one engine behind ``serve`` and batch transform.

An *instance* is a JSON object. SageMaker picks the work per instance from the keys it holds, and so do we:

* both ``in0`` and ``in1`` → ``{"scores": [...]}``: softmax probabilities of length ``num_classes``,
  or ``[value]`` for a regression model, or ``[cosine]`` for a model trained with
  ``objective=cosine`` or ``contrastive`` (an extension; such a model has no output layer);
* only ``in0`` (or only ``in1``) → ``{"embeddings": [...]}``: that side's encoder output, ``enc_dim`` floats.

Other keys (``label``, ``id``, ...) are ignored, so a labelled test file can be sent as is. A request
may mix both kinds; instances are grouped by kind, run in batches and returned in request order.
Every instance is validated before any is run, and every problem names its instance and field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.jsonl import jtype
from ..data.pairs import Schema
from ..data.sampling import Batch
from ..errors import DataError, Object2VecError, Problem, relocate
from ..estimator import Object2Vec
from ..nn.model import pair_scores
from ..text.tokenize import read_text_pairs
from ..training.batches import batch_inputs, side_tensors, side_weights

BATCH_SIZE = 1024
MAX_SEQ_LEN = 5000  # SageMaker's bound for max_seq_len and infer_max_seqlens


class InstanceError(Object2VecError, ValueError):
    """Some instances are invalid (none of the request was run).

    ``found`` holds every :class:`~object2vec.errors.Problem`, located by instance index (a problem
    the reader could not place belongs to the whole ``request``); ``problems`` holds their lines, each
    instance named by ``name`` (``instances[i]``, ``line N``, ``file:line``) and without training
    advice (a client cannot change the model).
    """

    def __init__(
        self,
        problems: list[Problem],
        name: Callable[[int], str] = "instances[{}]".format,
        count: int | None = None,
        shown: int = 20,
    ):
        self.found = problems
        self.problems = [
            p.render(name, advice=False) if isinstance(p.location, int) else f"request: {p.render(advice=False)}"
            for p in problems
        ]
        self.count = count if count is not None else len(problems)
        listed = "\n".join(f"  {p}" for p in self.problems[:shown])
        more = "" if self.count <= shown else f"\n  ... and {self.count - shown} more"
        noun = "instance problem" if self.count == 1 else "instance problems"
        super().__init__(f"{self.count} {noun}:\n{listed}{more}")


def parse_max_seqlens(value: str) -> tuple[int, int]:
    """``infer_max_seqlens=<in0>,<in1>``: two integers in [1, 5000]."""
    parts = [p.strip() for p in value.split(",")]
    try:
        lens = tuple(int(p) for p in parts)
    except ValueError:
        lens = ()
    if len(lens) != 2 or not all(1 <= n <= MAX_SEQ_LEN for n in lens):
        raise ValueError(f"infer_max_seqlens={value!r}; expected two integers in [1, {MAX_SEQ_LEN}], e.g. 20,20")
    return lens


class Predictor:
    """A trained model ready to answer instances, in fp32 under ``torch.inference_mode``.

    Results are deterministic: the same instance gives the same numbers alone or in any batch
    (encoders never look across a batch; see ``docs/architecture.md``).
    """

    def __init__(self, model: Object2Vec, batch_size: int = BATCH_SIZE, normalize: bool = False):
        self.model = model
        self.normalize = normalize  # embeddings scaled to length 1
        self.net = model._fitted().eval()
        self.hp = self.net.hp
        self.schema = Schema.from_hyperparameters(self.hp)
        self.device = next(self.net.parameters()).device
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", batch_size: int = BATCH_SIZE, normalize: bool = False) -> Predictor:
        return cls(Object2Vec.load(path, device=device), batch_size, normalize)

    @property
    def output_width(self) -> dict[str, int]:
        scores = self.hp.num_classes if self.hp.has_head and not self.hp.is_regression else 1
        return {"scores": scores, "embeddings": self.hp.enc_dim}

    def run(
        self,
        instances: Sequence[Any],
        max_seqlens: tuple[int, int] | None = None,
        locate: Callable[[int], str] = "instances[{}]".format,
    ) -> list[dict[str, np.ndarray]]:
        """One ``{"scores": row}`` or ``{"embeddings": row}`` per instance, in order.

        ``max_seqlens`` truncates ``(in0, in1)`` sequences for this call (the content-type parameter
        ``infer_max_seqlens``); by default sequences are truncated to the training ``max_seq_len``.
        Raises :class:`InstanceError` naming every bad instance before anything runs.
        """
        groups: dict[str, list[int]] = {"pair": [], "in0": [], "in1": []}
        problems: list[Problem] = []
        for i, inst in enumerate(instances):
            if type(inst) is not dict:
                problems.append(Problem(i, None, f"is {jtype(inst)}", "an object with in0 and/or in1"))
                continue
            has0, has1 = "in0" in inst, "in1" in inst
            if has0 and has1:
                groups["pair"].append(i)
            elif has0 or has1:
                groups["in0" if has0 else "in1"].append(i)
            else:
                keys = ", ".join(sorted(map(str, inst))) or "none"
                problems.append(
                    Problem(i, None, f"has neither in0 nor in1 (keys: {keys})", "both (pair scores) or one of them (embeddings)")
                )
        schema = self.schema if max_seqlens is None else dataclasses.replace(self.schema, max_seq_len=max_seqlens)
        data = {}
        for mode, idx in groups.items():
            if not idx:
                continue
            sides = ("in0", "in1") if mode == "pair" else (mode,)
            try:
                data[mode] = read_text_pairs(
                    [instances[i] for i in idx], schema, self.model._text, require_label=False, sides=sides
                )
            except DataError as e:  # the reader's record j is instance idx[j]; it cannot place the rest
                problems += relocate(e.found, idx)
        if problems:
            problems.sort(key=lambda p: p.location if isinstance(p.location, int) else -1)
            raise InstanceError(problems, locate)
        results: list[dict[str, np.ndarray]] = [{}] * len(instances)
        for mode, pairs in data.items():
            if mode == "pair":
                key, values = "scores", self.scores(pairs)
            else:
                key, values = "embeddings", self.embeddings(pairs, mode)
            for row, i in zip(values, groups[mode], strict=True):
                results[i] = {key: row}
        return results

    @torch.inference_mode()
    def scores(self, data: Any) -> np.ndarray:
        """``(n, num_classes)`` probabilities, or ``(n, 1)`` regression values or cosines, for packed pairs."""
        out = []
        for start in range(0, len(data), self.batch_size):
            idx = np.arange(start, min(start + self.batch_size, len(data)))
            y = self.net(*batch_inputs(data, Batch(idx, idx, idx), self.device))
            out.append(pair_scores(y, self.hp).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.output_width["scores"]), np.float32)

    @torch.inference_mode()
    def embeddings(self, data: Any, side: str) -> np.ndarray:
        """``(n, enc_dim)`` float32 encoder outputs of one side (``in0`` → enc0, ``in1`` → enc1),
        L2-normalised if the predictor was made with ``normalize``."""
        index = 0 if side == "in0" else 1
        packed = data.in0 if index == 0 else data.in1
        out = []
        for start in range(0, len(packed), self.batch_size):
            idx = np.arange(start, min(start + self.batch_size, len(packed)))
            weights = side_weights(packed, idx, self.device)
            vectors = self.net.encode(index, *side_tensors(packed, idx, self.device), weights).float()
            out.append((torch.nn.functional.normalize(vectors, dim=1) if self.normalize else vectors).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.hp.enc_dim), np.float32)
