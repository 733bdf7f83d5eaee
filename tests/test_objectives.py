"""Objectives on the encodings (extensions): cosine and contrastive losses, their batches, DDP, and
SageMaker's objective left exactly as it was."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY
from object2vec import Object2Vec
from object2vec.data.contrastive import contrastive_batches
from object2vec.data.pairs import PairData, Schema, Side, read_pairs
from object2vec.data.sampling import epoch_batches
from object2vec.data.synthetic import make_pairs
from object2vec.errors import HyperparameterError
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training.batches import batch_inputs, label_tensor
from object2vec.training.loop import fit
from object2vec.training.objectives import EmbeddingObjective, contrastive_loss, cosine_loss
from object2vec.training.optimizers import Optimizers

WORKER = Path(__file__).parent / "workers" / "contrastive_worker.py"


def hyperparameters(**extra) -> Hyperparameters:
    return Hyperparameters(**{**TINY, **extra}).resolve()


def unit(x: list[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a / np.linalg.norm(a)


# --------------------------------------------------------------------------------------------------
# The losses against hand computations


def test_cosine_loss_fits_the_cosine_to_the_label_scaled_to_0_1():
    u = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    v = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([5.0, 2.5, 0.0])  # STS-style 0-5 scores
    hp = hyperparameters(objective="cosine", output_layer="mean_squared_error", cosine_label_min=0, cosine_label_max=5)
    expected = ((1.0 - 1.0) ** 2 + (math.sqrt(0.5) - 0.5) ** 2 + (0.0 - 0.0) ** 2) / 3
    assert float(cosine_loss(u, v, labels, hp)) == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_is_a_softmax_over_the_batch_and_its_hard_negatives():
    u = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.5]]
    v = [[1.0, 0.2], [0.1, 1.0], [-1.0, 1.0], [0.5, 1.0]]
    labels = [1, 1, 0, 1]  # row 2 is a label-0 pair: its v is a hard negative of every positive
    t = 0.5
    hp = hyperparameters(objective="contrastive", contrastive_temperature=t, contrastive_hard_negatives=True)
    keys = torch.arange(4)  # all distinct: no accidental hits
    loss, rows, correct = contrastive_loss(
        torch.tensor(u), torch.tensor(v), torch.tensor(labels), keys, keys + 10, hp, gather=False
    )
    anchors, candidates = [0, 1, 3], [0, 1, 3, 2]  # the positives' v, then the hard negative
    expected = []
    for i, a in enumerate(anchors):
        logits = [unit(u[a]) @ unit(v[c]) / t for c in candidates]
        expected.append(math.log(sum(math.exp(z) for z in logits)) - logits[i])
    np.testing.assert_allclose(rows.numpy(), expected, rtol=1e-5)
    assert float(loss) == pytest.approx(np.mean(expected), rel=1e-5)
    assert correct.tolist() == [
        bool(np.argmax([unit(u[a]) @ unit(v[c]) for c in candidates]) == i) for i, a in enumerate(anchors)
    ]


def test_symmetric_contrastive_averages_both_directions():
    u = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    v = [[1.0, 0.3], [0.2, 1.0], [-1.0, 0.4]]
    t = 0.2
    hp = hyperparameters(objective="contrastive", contrastive_temperature=t, contrastive_symmetric=True)
    keys = torch.arange(3)
    _, rows, _ = contrastive_loss(
        torch.tensor(u), torch.tensor(v), torch.ones(3, dtype=torch.long), keys, keys + 10, hp, gather=False
    )
    sim = np.array([[unit(a) @ unit(b) for b in v] for a in u]) / t  # sim[i, j] = cos(u_i, v_j) / t
    forward = [math.log(np.exp(sim[i]).sum()) - sim[i, i] for i in range(3)]
    backward = [math.log(np.exp(sim[:, i]).sum()) - sim[i, i] for i in range(3)]
    np.testing.assert_allclose(rows.numpy(), (np.array(forward) + np.array(backward)) / 2, rtol=1e-5)


def test_a_repeated_item_or_user_in_the_batch_is_not_a_negative():
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    v = torch.tensor([[1.0, 0.3], [0.2, 1.0], [-1.0, 0.4]])
    hp = hyperparameters(objective="contrastive", contrastive_temperature=0.5)
    ones = torch.ones(3, dtype=torch.long)
    # rows 0 and 2 hold the same item (in1 key 7); rows 1 and 2 the same user (in0 key 5)
    _, rows, _ = contrastive_loss(u, v, ones, torch.tensor([4, 5, 5]), torch.tensor([7, 8, 7]), hp, gather=False)
    sim = (F.normalize(u, dim=1) @ F.normalize(v, dim=1).T / 0.5).numpy()
    # rows 0 and 1 see each other, not row 2 (its item, its user); row 2 sees only itself
    expected = [math.log(np.exp(sim[0, [0, 1]]).sum()) - sim[0, 0], math.log(np.exp(sim[1, [0, 1]]).sum()) - sim[1, 1], 0.0]
    np.testing.assert_allclose(rows.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_logq_correction_subtracts_each_candidates_log_share_of_the_training_positives():
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    hp = hyperparameters(objective="contrastive", contrastive_temperature=1.0, contrastive_logq_correction=True)
    log_q = torch.log(torch.tensor([0.75, 0.25]))
    keys = torch.arange(2)
    _, rows, _ = contrastive_loss(u, v, torch.ones(2, dtype=torch.long), keys, keys + 10, hp, log_q, gather=False)
    sim = (F.normalize(u, dim=1) @ F.normalize(v, dim=1).T).numpy() - log_q.numpy()[None, :]
    expected = [math.log(np.exp(sim[i]).sum()) - sim[i, i] for i in range(2)]
    np.testing.assert_allclose(rows.numpy(), expected, rtol=1e-5)


def test_logq_frequencies_come_from_the_training_positives():
    in1 = [[1], [1], [1], [2], [3]]
    data = PairData(Side.from_lists([[0]] * 5), Side.from_lists(in1), np.array([1, 1, 1, 1, 0], dtype=np.int8))
    objective = EmbeddingObjective(hyperparameters(objective="contrastive", contrastive_logq_correction=True), data)
    keys, log_q = objective.log_q
    share = dict(zip(keys.tolist(), np.exp(log_q).round(6).tolist(), strict=True))
    assert share == {data.in1.keys[0]: 0.75, data.in1.keys[3]: 0.25}  # the label-0 pair's item is not counted


# --------------------------------------------------------------------------------------------------
# Batches


def contrastive_data() -> PairData:
    """Users 0-5 each with one positive; users 0, 1 and 3 also with label-0 pairs (0 has two)."""
    in0 = [[0], [1], [2], [3], [4], [5], [0], [0], [1], [3], [9]]
    in1 = [[10], [11], [12], [13], [14], [15], [20], [21], [22], [23], [24]]
    labels = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=np.int8)
    return PairData(Side.from_lists(in0), Side.from_lists(in1), labels)


def test_a_contrastive_epoch_is_the_positives_in_batches_of_mini_batch_size():
    data = contrastive_data()
    hp = hyperparameters(objective="contrastive", mini_batch_size=4)
    batches = epoch_batches(data, hp, epoch=1, seed=0)
    assert [len(b.left) for b in batches] == [4, 2]
    assert sorted(np.concatenate([b.left for b in batches]).tolist()) == [0, 1, 2, 3, 4, 5]
    assert all((b.left == b.right).all() and (b.labels == 1).all() for b in batches)
    assert not np.array_equal(batches[0].left, epoch_batches(data, hp, epoch=2, seed=0)[0].left)  # reshuffled


def test_hard_negatives_are_label_zero_pairs_of_the_same_in0_in_the_same_batch():
    data = contrastive_data()
    hp = hyperparameters(objective="contrastive", mini_batch_size=2, contrastive_hard_negatives=True)
    partners_of_user_0 = set()
    for epoch in range(1, 30):
        batches = contrastive_batches(data, hp, epoch, seed=0)
        assert [int((labels == 1).sum()) for _, labels in batches] == [2, 2, 2]
        for rows, labels in batches:
            for k in np.flatnonzero(labels == 0):  # each label-0 row follows its positive, same in0 tokens
                assert labels[k - 1] == 1 and data.in0[rows[k]].tolist() == data.in0[rows[k - 1]].tolist()
            partners_of_user_0 |= {int(r) for r in rows if r in (6, 7)}
        rows = np.concatenate([r for r, _ in batches])
        assert sorted(r for r in rows.tolist() if r >= 6) == [6, 8, 9] or sorted(r for r in rows.tolist() if r >= 6) == [7, 8, 9]
    assert partners_of_user_0 == {6, 7}  # drawn afresh each epoch among user 0's label-0 pairs


# --------------------------------------------------------------------------------------------------
# Hyperparameters


def test_objectives_are_extensions_with_sagemaker_as_the_default():
    hp = Hyperparameters(enc0_max_seq_len=5, enc0_vocab_size=10)
    assert hp.objective == "sagemaker" and hp.has_head and hp.embedding_objective is None
    from object2vec.hyperparameters import hyperparameter_table

    extensions = {r["name"] for r in hyperparameter_table() if r["extension"]}
    assert {"objective", "objective_weight", "contrastive_temperature", "contrastive_symmetric"} <= extensions
    assert "output_layer" not in extensions


def test_contrastive_needs_class_labels_and_refuses_negative_sampling():
    with pytest.raises(HyperparameterError, match="objective=contrastive reads label 1 as a positive pair"):
        hyperparameters(objective="contrastive", output_layer="mean_squared_error")
    with pytest.raises(HyperparameterError, match="set negative_sampling_rate=0"):
        hyperparameters(objective="contrastive", negative_sampling_rate=3)
    assert hyperparameters(objective="sagemaker+contrastive", negative_sampling_rate=3).negative_sampling_rate == 3
    with pytest.raises(HyperparameterError, match="cosine_label_min must be below cosine_label_max; got 5 and 0"):
        hyperparameters(objective="cosine", cosine_label_min=5, cosine_label_max=0)


def test_a_model_without_the_sagemaker_objective_has_no_mlp_or_output_layer():
    net = Object2VecNet(hyperparameters(objective="contrastive"))
    assert net.mlp is None and net.output is None
    assert not any(name.startswith(("mlp", "output")) for name in net.state_dict())
    assert Object2VecNet(hyperparameters(objective="sagemaker+cosine")).output is not None


# --------------------------------------------------------------------------------------------------
# SageMaker's objective is untouched


@pytest.mark.parametrize("storage", ["dense", "row_sparse"])
def test_the_sagemaker_objective_trains_bit_identically_to_the_output_layer_loss_alone(records, storage):
    """The default takes the pre-extension training step: the output layer's loss, nothing added, no
    extra random draws (dropout on), the same batches."""
    hp = hyperparameters(token_embedding_storage_type=storage, dropout=0.2, negative_sampling_rate=1)
    data = read_pairs(records, Schema.from_hyperparameters(hp))
    torch.manual_seed(0)
    net = Object2VecNet(hp)
    reference = copy.deepcopy(net)
    torch.manual_seed(5)
    fit(net, data, seed=3)

    torch.manual_seed(5)
    optimizers = Optimizers(reference, hp)
    reference.train()
    for epoch in range(1, hp.epochs + 1):
        for batch in epoch_batches(data, hp, epoch, 3):
            optimizers.zero_grad()
            out = reference(*batch_inputs(data, batch, torch.device("cpu")))
            F.cross_entropy(out.float(), label_tensor(batch.labels, hp, torch.device("cpu"))).backward()
            optimizers.step()
    for (name, a), b in zip(net.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


# --------------------------------------------------------------------------------------------------
# Training: every encoder, row_sparse, bf16; DDP


@pytest.mark.parametrize(
    "objective,extra",
    [
        ("cosine", {"enc0_network": "hcnn", "enc0_layers": 2}),
        ("contrastive", {"enc0_network": "bilstm", "contrastive_symmetric": True}),
        ("contrastive", {"token_embedding_storage_type": "row_sparse", "contrastive_hard_negatives": True}),
        ("sagemaker+contrastive", {"token_embedding_storage_type": "row_sparse", "negative_sampling_rate": 1}),
        ("sagemaker+cosine", {"enc0_network": "hcnn", "enc0_layers": 1}),
    ],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_each_objective_trains_with_every_encoder_row_sparse_and_bf16(objective, extra, precision):
    train, validation = make_pairs(640, seed=1), make_pairs(200, seed=2)
    model = Object2Vec(**{**TINY, "epochs": 3, **extra}, objective=objective, precision=precision, device="cpu", seed=0)
    model.fit(train, validation)
    watched = {"cosine": "cosine_mean_squared_error", "contrastive": "contrastive_cross_entropy"}.get(objective, "loss")
    curve = [epoch["train"][watched] for epoch in model.history_]
    assert all(math.isfinite(x) for x in curve) and curve[-1] < curve[0], curve
    assert all(math.isfinite(x) for x in model.history_[-1]["validation"].values())


def run_worker(out: Path, nproc: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
        if nproc > 1
        else [sys.executable]
    )
    done = subprocess.run([*launcher, str(WORKER), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_in_batch_negatives_across_two_gloo_ranks_train_as_one_process_with_the_global_batch(tmp_path):
    """Each rank holds half of a 16-pair batch (unequal positives, repeated users and items and hard
    negatives across the halves); candidates are gathered with their gradient, so one SGD step matches
    one process that holds the whole batch (dense and row_sparse tables, and a joint hcnn model)."""
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir(), double.mkdir()
    run_worker(single, 1)
    run_worker(double, 2)
    for case in ("contrastive-dense", "contrastive-row_sparse", "joint-hcnn"):
        start, one = torch.load(single / f"{case}.start.pt"), torch.load(single / f"{case}.rank0.pt")
        rank0, rank1 = torch.load(double / f"{case}.rank0.pt"), torch.load(double / f"{case}.rank1.pt")
        assert any(not torch.equal(start[name], one[name]) for name in one), case  # the step moved the weights
        for name in one:
            assert torch.equal(rank0[name], rank1[name]), (case, name)
            torch.testing.assert_close(rank0[name], one[name], rtol=1e-5, atol=1e-6, msg=f"{case} {name}")


# --------------------------------------------------------------------------------------------------
# Inference follows the objective


@pytest.fixture(scope="module")
def cosine_model() -> Object2Vec:
    return Object2Vec(**{**TINY, "epochs": 2}, objective="contrastive", device="cpu", seed=0).fit(make_pairs(640, seed=1))


def test_a_contrastive_model_predicts_the_cosine_of_its_embeddings(cosine_model):
    pairs = make_pairs(20, seed=4)
    scores = cosine_model.predict(pairs)
    u = cosine_model.embed(in0=[p["in0"] for p in pairs], normalize=True)
    v = cosine_model.embed(in1=[p["in1"] for p in pairs], normalize=True)
    assert scores.shape == (20, 1)
    np.testing.assert_allclose(scores[:, 0], (u * v).sum(axis=1), rtol=1e-5, atol=1e-6)


def test_normalized_embeddings_have_unit_length_and_keep_their_direction(cosine_model):
    seqs = [p["in0"] for p in make_pairs(20, seed=4)]
    raw, unit_ = cosine_model.embed(in0=seqs), cosine_model.embed(in0=seqs, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit_, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit_ * np.linalg.norm(raw, axis=1, keepdims=True), raw, rtol=1e-4, atol=1e-6)


def test_serving_and_recommend_score_a_contrastive_model_by_cosine(cosine_model):
    from object2vec.retrieval.recommend import evaluate_ranking, recommend
    from object2vec.serving.predictor import Predictor

    pairs = make_pairs(12, seed=5)
    predictor = Predictor(cosine_model)
    served = predictor.run([{"in0": p["in0"], "in1": p["in1"]} for p in pairs] + [{"in0": pairs[0]["in0"]}])
    assert predictor.output_width["scores"] == 1
    np.testing.assert_allclose(np.stack([r["scores"] for r in served[:-1]]), cosine_model.predict(pairs), rtol=1e-6)
    by_score = recommend(cosine_model, pairs[0]["in0"], k=5)
    by_embedding = recommend(cosine_model, pairs[0]["in0"], k=5, by="embedding")
    assert [i for i, _ in by_score] == [i for i, _ in by_embedding]
    np.testing.assert_allclose([s for _, s in by_score], [s for _, s in by_embedding], rtol=1e-5)
    held_out = [{**p, "in1": p["in1"][:1]} for p in make_pairs(60, seed=6)]  # one-token items: the vocabulary
    assert evaluate_ranking(cosine_model, held_out, k=10) == evaluate_ranking(cosine_model, held_out, k=10, by="embedding")


def test_a_cosine_model_saves_loads_and_predicts_the_same(cosine_model, tmp_path):
    cosine_model.save(tmp_path / "m")
    again = Object2Vec.load(tmp_path / "m", device="cpu")
    assert again.hyperparameters_.objective == "contrastive"
    pairs = make_pairs(10, seed=7)
    np.testing.assert_array_equal(again.predict(pairs), cosine_model.predict(pairs))


def test_embed_and_index_build_normalize_on_the_command_line(cosine_model, tmp_path):
    from click.testing import CliRunner

    from object2vec.cli import main

    cosine_model.save(tmp_path / "m")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(f'{{"id": {i}, "in1": [{i}, {i + 1}]}}\n' for i in range(30)))
    runner = CliRunner()
    out = tmp_path / "e.npy"
    result = runner.invoke(
        main,
        [
            "embed",
            str(tmp_path / "m"),
            str(items),
            "--side",
            "in1",
            "--normalize",
            "--format",
            "npy",
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.linalg.norm(np.load(out), axis=1), 1.0, rtol=1e-5)
    result = runner.invoke(main, ["index", "build", str(tmp_path / "m"), "--ids", str(items), "--metric", "ip", "--normalize", "-o", str(tmp_path / "ix"), "--npy", str(tmp_path / "v.npy"), "--json", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.linalg.norm(np.load(tmp_path / "v.npy"), axis=1), 1.0, rtol=1e-5)
    result = runner.invoke(main, ["recommend", str(tmp_path / "m"), "--in0", "3", "--k", "3", "--device", "cpu"])
    assert result.exit_code == 0 and "cosine" in result.output.splitlines()[0], result.output
