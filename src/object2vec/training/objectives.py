"""Objectives on the encodings themselves (extensions; ``objective`` in the hyperparameters).

SageMaker's objective trains the comparator, MLP and output layer on ``[u*v; u; v; |u-v|]``; nothing
asks the encodings ``u`` and ``v`` to be near each other, so their cosine is a weak similarity (on STS
Benchmark barely above averaged word vectors). These losses train the cosine itself:

* ``cosine``: the cosine of ``u`` and ``v`` fitted by mean squared error to the label scaled from
  ``[cosine_label_min, cosine_label_max]`` to ``[0, 1]`` (sentence-transformers' CosineSimilarityLoss);
* ``contrastive``: InfoNCE with in-batch negatives (MultipleNegativesRankingLoss): each positive
  pair's (label 1) ``u`` is scored against the ``v`` of every positive pair of the batch by
  ``cosine / contrastive_temperature``, and a softmax cross-entropy picks its own. Options:
  ``contrastive_symmetric`` adds the other direction (each ``v`` against every ``u``) and averages;
  ``contrastive_hard_negatives`` adds the ``v`` of the batch's label-0 pairs as candidates of every
  ``u``; ``contrastive_logq_correction`` subtracts ``log q`` (the candidate's share of the training
  positives) from each in-batch logit, the sampling-bias correction of sampled softmax: in-batch
  negatives are drawn in proportion to popularity, so without it the cosine learns
  ``log P(v|u) - log P(v)`` and ranks rare items first.
  A candidate with the same in1 tokens as the row's own positive, or a positive pair of the same in0,
  is not a negative (an "accidental hit") and is left out of that row's softmax.

``sagemaker+cosine`` and ``sagemaker+contrastive`` add ``objective_weight`` times that loss to the
output layer's. Under DDP the contrastive candidates are gathered from every rank with their
gradient, so 2 ranks of B pairs train as one process with the 2B-pair batch
(``tests/test_objectives.py``). Losses are computed in fp32, also under a bf16 autocast.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.pairs import PairData
from ..data.sampling import Batch
from ..hyperparameters import Hyperparameters
from . import distributed

Parts = dict[str, tuple[float, float]]  # metric name -> (sum over the batch's rows, rows)

COSINE_METRIC = "cosine_mean_squared_error"
CONTRASTIVE_METRIC = "contrastive_cross_entropy"


def cosine_loss(u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, hp: Hyperparameters) -> torch.Tensor:
    """Mean of ``(cos(u, v) - target)**2``, target = the label scaled so that ``cosine_label_min`` -> 0
    and ``cosine_label_max`` -> 1."""
    target = (labels.float() - hp.cosine_label_min) / (hp.cosine_label_max - hp.cosine_label_min)
    cos = (F.normalize(u.float(), dim=1) * F.normalize(v.float(), dim=1)).sum(dim=1)
    return F.mse_loss(cos, target)


def contrastive_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    labels: torch.Tensor,
    keys0: torch.Tensor,
    keys1: torch.Tensor,
    hp: Hyperparameters,
    log_q: torch.Tensor | None = None,
    gather: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InfoNCE over in-batch candidates (see the module docstring).

    Args:
        u, v: the batch's encodings ``(B, d)``; rows labelled 1 are positive pairs, rows labelled 0
            hard negatives (with ``contrastive_hard_negatives``), other rows are ignored.
        keys0, keys1: ``(B,)`` keys of each row's in0 and in1 tokens (equal tokens, equal key).
        log_q: ``(B,)`` log share of each row's in1 among training positives (logQ correction).
        gather: under DDP, take the candidates of every rank (training); False scores each rank's
            rows alone (evaluation, where ranks hold different numbers of batches).

    Returns:
        ``(loss, row_losses, correct)``: the loss to minimise, scaled so that DDP's gradient average
        gives the gradient of the mean over the global batch's positives; each local positive's
        cross-entropy; and whether its own candidate scored highest.
    """
    pos, neg = labels == 1, labels == 0
    if not hp.contrastive_hard_negatives:
        neg = torch.zeros_like(neg)
    anchors = F.normalize(u[pos].float(), dim=1)  # (P, d)
    positives = F.normalize(v[pos].float(), dim=1)  # (P, d)
    negatives = F.normalize(v[neg].float(), dim=1)  # (H, d)
    pos_log_q = log_q[pos].float() if log_q is not None else positives.new_zeros(len(positives))
    local = len(anchors)
    pos_keys = torch.stack([keys0[pos], keys1[pos]], dim=1)  # (P, 2)
    if gather:
        (all_anchors, all_positives, all_log_q, all_keys), start = distributed.gather_rows(
            [anchors, positives, pos_log_q, pos_keys]
        )
        (all_negatives, all_neg_keys), _ = distributed.gather_rows([negatives, keys1[neg]])
    else:
        all_anchors, all_positives, all_log_q, all_keys, start = anchors, positives, pos_log_q, pos_keys, 0
        all_negatives, all_neg_keys = negatives, keys1[neg]
    total = len(all_anchors)
    rows = torch.arange(local, device=u.device)
    target = start + rows  # each row's own positive among the candidates
    own = all_keys[target]  # (P, 2)
    # a positive column with the row's in1, or of the row's in0, is no negative (an accidental hit)
    hit = (all_keys[None, :, 0] == own[:, None, 0]) | (all_keys[None, :, 1] == own[:, None, 1])  # (P, total)
    hit[rows, target] = False
    logits = anchors @ all_positives.T / hp.contrastive_temperature  # (P, total)
    if log_q is not None:
        logits = logits - all_log_q[None, :]
    logits = logits.masked_fill(hit, -torch.inf)
    hard = anchors @ all_negatives.T / hp.contrastive_temperature  # (P, H_total)
    hard = hard.masked_fill(all_neg_keys[None, :] == own[:, None, 1], -torch.inf)
    scores = torch.cat([logits, hard], dim=1)
    row_losses = torch.logsumexp(scores, dim=1) - scores[rows, target]
    correct = scores.argmax(dim=1) == target if local else torch.zeros(0, dtype=torch.bool, device=u.device)
    if hp.contrastive_symmetric:  # each v against every u of the batch (no hard negatives on that side)
        back = (positives @ all_anchors.T / hp.contrastive_temperature).masked_fill(hit, -torch.inf)
        row_losses = (row_losses + torch.logsumexp(back, dim=1) - back[rows, target]) / 2
    world = distributed.context().world_size if gather else 1
    loss = row_losses.sum() * (world / max(total, 1))  # DDP divides by the world size
    return loss, row_losses.detach(), correct


class EmbeddingObjective:
    """The cosine or contrastive part of a training step, for one model and one dataset.

    ``train`` supplies the frequencies of the logQ correction; ``fit`` evaluates its validation and
    test splits with the same object, so early stopping watches the loss training minimises. Without
    ``train`` (``Object2Vec.evaluate`` on a loaded model) the contrastive loss is the plain one.
    """

    def __init__(self, hp: Hyperparameters, train: PairData | None = None):
        self.hp = hp
        self.kind = hp.embedding_objective
        self.log_q: tuple[np.ndarray, np.ndarray] | None = None
        if self.kind == "contrastive" and hp.contrastive_logq_correction and train is not None:
            positive_keys = train.in1.keys[train.labels == 1]
            keys, counts = np.unique(positive_keys, return_counts=True)
            self.log_q = (keys, np.log(counts / max(len(positive_keys), 1)))

    def __call__(
        self, u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, data: PairData, batch: Batch, gather: bool = True
    ) -> tuple[torch.Tensor, Parts]:
        """The loss to add to the step's, and its metric sums."""
        if self.kind == "cosine":
            loss = cosine_loss(u, v, labels, self.hp)
            n = len(labels)
            return loss, {COSINE_METRIC: (float(loss.detach()) * n, n)}
        keys0 = torch.from_numpy(data.in0.keys[batch.left]).to(u.device)
        keys1_np = data.in1.keys[batch.right]
        keys1 = torch.from_numpy(keys1_np).to(u.device)
        log_q = None
        if self.log_q is not None:
            table_keys, table_log_q = self.log_q
            at = np.minimum(np.searchsorted(table_keys, keys1_np), len(table_keys) - 1)
            known = table_keys[at] == keys1_np
            log_q = torch.from_numpy(np.where(known, table_log_q[at], table_log_q.min(initial=0.0))).to(u.device)
        loss, row_losses, correct = contrastive_loss(u, v, labels, keys0, keys1, self.hp, log_q, gather)
        n = len(row_losses)
        return loss, {CONTRASTIVE_METRIC: (float(row_losses.sum()), n), "contrastive_accuracy": (float(correct.sum()), n)}
