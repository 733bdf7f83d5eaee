"""The training loop: optimizers, metrics, early stopping with best-weight restore, sampling."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from object2vec import Object2Vec
from object2vec.data.pairs import PairData, Side
from object2vec.data.sampling import epoch_batches, epoch_pairs
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training.loop import TrainResult, fit


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "rmsprop", "sgd", "adadelta"])
def test_every_optimizer_lowers_the_training_loss(tiny, records, optimizer):
    lr = {"sgd": 0.5, "adagrad": 0.1}.get(optimizer, 0.01)  # adadelta has none (MXNet), so it is ignored
    model = Object2Vec(**{**tiny, "optimizer": optimizer, "learning_rate": lr, "epochs": 10, "mini_batch_size": 8}).fit(records)
    losses = [h["train"]["cross_entropy"] for h in model.history_]
    assert losses[-1] < losses[0] - 0.05, losses


def test_weight_decay_shrinks_the_weights(tiny, records):
    plain = Object2Vec(**tiny).fit(records)
    decayed = Object2Vec(**tiny, weight_decay=1.0).fit(records)
    norm = lambda m: sum(float(p.detach().norm()) for p in m.model_.mlp.parameters())  # noqa: E731
    assert norm(decayed) < norm(plain)


def test_metrics_per_epoch_follow_sagemaker_names(tiny, records):
    model = Object2Vec(**tiny).fit(records, validation=records[:50], test=records[50:100])
    first = model.history_[0]
    assert set(first["train"]) == {"accuracy", "cross_entropy"}
    assert set(first["validation"]) == {"accuracy", "cross_entropy"}
    assert first["throughput"] > 0
    assert set(model.metrics_["test"]) == {"accuracy", "cross_entropy"}


def test_regression_reports_mse_and_rmse(tiny):
    from object2vec.data.synthetic import make_pairs

    data = make_pairs(200, task="regression")
    model = Object2Vec(**tiny, output_layer="mean_squared_error").fit(data, validation=data[:50])
    metrics = model.history_[-1]["validation"]
    assert set(metrics) == {"mean_squared_error", "rmse"}
    assert metrics["rmse"] == pytest.approx(metrics["mean_squared_error"] ** 0.5)


def test_log_lines_match_sagemaker_metric_regexes(tiny, records, caplog):
    import re

    caplog.set_level(logging.INFO, logger="object2vec")
    Object2Vec(**tiny).fit(records, validation=records[:50], test=records[:50])
    text = caplog.text
    assert re.search(r"#quality_metric: host=\S+, epoch=\S+, train accuracy <score>=(\S+)", text)
    assert re.search(r"#quality_metric: host=\S+, epoch=\S+, validation cross_entropy <loss>=(\S+)", text)
    assert re.search(r"#quality_metric: host=\S+, test accuracy <score>=(\S+)", text)
    assert re.search(r"#throughput_metric: host=\S+, train throughput=(\S+) records/second", text)
    assert "host=algo-1" in text


def _toy(n: int = 64) -> PairData:
    rng = np.random.default_rng(0)
    side = Side(rng.integers(0, 10, n).astype(np.int32), np.arange(n + 1, dtype=np.int64))
    return PairData(side, side, rng.integers(0, 2, n))


def _fit_on_validation_losses(monkeypatch, losses: list[float], **hp_values) -> tuple[TrainResult, list[torch.Tensor]]:
    """Train the toy net while the validation split reports ``losses``, one per epoch, in order."""
    hp = Hyperparameters(
        enc0_max_seq_len=1, enc0_vocab_size=10, enc0_network="pooled_embedding", enc_dim=4, mlp_dim=4, **hp_values
    )
    torch.manual_seed(0)
    net = Object2VecNet(hp)
    reported, snapshots = iter(losses), []

    def fake_evaluate(net, data, device, batch_size=0, objective=None):
        snapshots.append(net.output.weight.detach().clone())
        return {"accuracy": 0.5, "cross_entropy": next(reported)}

    monkeypatch.setattr("object2vec.training.loop.evaluate", fake_evaluate)
    result = fit(net, _toy(), validation=_toy())
    return result, [net.output.weight.detach(), *snapshots]


def test_early_stopping_restores_the_best_epoch(monkeypatch):
    """Validation losses 0.9, 0.5, 0.7, 0.8, 0.85: three epochs in a row without a reduction from the
    epoch before, so training stops after epoch 5 and keeps epoch 2's weights."""
    result, (final, *snapshots) = _fit_on_validation_losses(
        monkeypatch, [0.9, 0.5, 0.7, 0.8, 0.85], epochs=10, early_stopping_patience=3
    )
    assert len(result.history) == 5 and result.stopped_early and result.best_epoch == 2
    torch.testing.assert_close(final, snapshots[1])


def test_a_loss_falling_by_less_than_the_tolerance_each_epoch_stops_after_patience_epochs(monkeypatch):
    """SageMaker's documented rule: the tolerance is the reduction needed between consecutive epochs.
    A loss falling 0.005 an epoch (tolerance 0.01, patience 3) stops after epoch 4, though every epoch
    was the best so far; the best (last) epoch's weights are kept. (The previous rule compared with
    the last improving epoch and ran all 12 epochs.)"""
    losses = [1.0 - 0.005 * i for i in range(12)]
    result, (final, *snapshots) = _fit_on_validation_losses(
        monkeypatch, losses, epochs=12, early_stopping_patience=3, early_stopping_tolerance=0.01
    )
    assert len(result.history) == 4 and result.stopped_early and result.best_epoch == 4
    torch.testing.assert_close(final, snapshots[3])


@pytest.mark.parametrize(("losses", "best"), [([0.9, 0.5, 0.4], 3), ([0.9, 0.5, 0.6], 2), ([0.5, 0.9, 0.6], 1)])
def test_the_best_epoch_is_kept_when_training_ends_at_its_last_epoch(monkeypatch, losses, best):
    """Ending at ``epochs`` (no copy is made when the last epoch is the best: the weights are its own)."""
    result, (final, *snapshots) = _fit_on_validation_losses(monkeypatch, losses, epochs=3, early_stopping_patience=5)
    assert len(result.history) == 3 and not result.stopped_early and result.best_epoch == best
    torch.testing.assert_close(final, snapshots[best - 1])


def test_a_reduction_from_the_previous_epoch_resets_patience_even_above_the_best_loss(monkeypatch):
    """1.0, 0.5, 0.7, 0.55 (-0.15 from the epoch before), 0.6, 0.65 with tolerance 0.1, patience 2:
    epoch 4 counts as an improvement, so training stops after epoch 6, and keeps epoch 2."""
    result, (final, *snapshots) = _fit_on_validation_losses(
        monkeypatch, [1.0, 0.5, 0.7, 0.55, 0.6, 0.65, 0.3], epochs=10, early_stopping_patience=2, early_stopping_tolerance=0.1
    )
    assert len(result.history) == 6 and result.stopped_early and result.best_epoch == 2
    torch.testing.assert_close(final, snapshots[1])


def test_without_validation_every_epoch_runs(tiny, records):
    model = Object2Vec(**{**tiny, "epochs": 3}).fit(records)
    assert len(model.history_) == 3 and model.metrics_["best_epoch"] == 3


def test_seed_makes_training_repeatable(tiny, records):
    a = Object2Vec(**tiny, seed=7).fit(records).predict(records[:20])
    b = Object2Vec(**tiny, seed=7).fit(records).predict(records[:20])
    c = Object2Vec(**tiny, seed=8).fit(records).predict(records[:20])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_each_epoch_is_a_fresh_shuffle_of_every_pair():
    hp = Hyperparameters(enc0_max_seq_len=1, enc0_vocab_size=10, mini_batch_size=8)
    data = _toy(40)
    e1 = np.concatenate([b.left for b in epoch_batches(data, hp, 1, seed=0)])
    e2 = np.concatenate([b.left for b in epoch_batches(data, hp, 2, seed=0)])
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == list(range(40))
    assert e1.tolist() != e2.tolist()


def test_negative_sampling_adds_n_label_zero_pairs_per_positive_never_the_own_partner():
    hp = Hyperparameters(enc0_max_seq_len=1, enc0_vocab_size=10, negative_sampling_rate=3)
    data = _toy(50)
    pairs = epoch_pairs(data, hp, 1, seed=0)
    positives = int((data.labels == 1).sum())
    assert len(pairs.left) == 50 + 3 * positives
    drawn = pairs.left != pairs.right
    assert drawn.sum() == 3 * positives and (pairs.labels[drawn] == 0).all()
    assert (data.labels[pairs.left[drawn]] == 1).all()


def test_bucketing_groups_similar_lengths():
    lengths = np.tile([1, 20], 64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    side = Side(np.zeros(offsets[-1], np.int32), offsets)
    data = PairData(side, side, np.zeros(len(lengths), np.int64))
    hp = Hyperparameters(enc0_max_seq_len=20, enc0_vocab_size=10, mini_batch_size=16, bucket_width=5)
    for batch in epoch_batches(data, hp, 1, seed=0):
        assert len(set(lengths[batch.left].tolist())) == 1


def test_dry_run_stops_after_max_steps(tiny, records):
    model = Object2Vec(**tiny).fit(records, max_steps=1)
    assert len(model.history_) == 1 and model.history_[0]["throughput"] > 0


def test_bf16_training_learns_like_fp32(tiny, records):
    fp32 = Object2Vec(**{**tiny, "epochs": 6}, device="cpu").fit(records)
    bf16 = Object2Vec(**{**tiny, "epochs": 6}, device="cpu", precision="bf16").fit(records)
    assert bf16.history_[-1]["train"]["cross_entropy"] < bf16.history_[0]["train"]["cross_entropy"]
    assert abs(bf16.score(records) - fp32.score(records)) < 0.1
    assert bf16.predict(records[:3]).dtype == np.float32  # inference stays fp32


def test_unknown_or_impossible_precision_is_refused(tiny, records):
    from object2vec import HyperparameterError

    with pytest.raises(HyperparameterError, match="precision must be one of fp32, bf16, fp16, auto"):
        Object2Vec(**tiny, precision="fp8", device="cpu").fit(records)
    with pytest.raises(HyperparameterError, match="fp16 needs a CUDA device"):
        Object2Vec(**tiny, precision="fp16", device="cpu").fit(records)


def _tiny_net(**overrides) -> Object2VecNet:
    hp = Hyperparameters(enc0_max_seq_len=1, enc0_vocab_size=10, enc0_network="pooled_embedding", enc_dim=4, mlp_dim=4,
                         **{"epochs": 10, **overrides})  # fmt: skip
    torch.manual_seed(0)
    return Object2VecNet(hp)


def test_every_callback_sees_every_epoch_record_and_one_can_end_the_run():
    class Recorder:
        def __init__(self, stop_at: int | None = None):
            self.epochs, self.stop_at = [], stop_at

        def on_epoch_end(self, record):
            self.epochs.append((record["epoch"], sorted(record)))
            return record["epoch"] == self.stop_at

    watcher, stopper = Recorder(), Recorder(stop_at=3)
    result = fit(_tiny_net(), _toy(), validation=_toy(), callbacks=[watcher, stopper])
    assert [e for e, _ in watcher.epochs] == [1, 2, 3] and len(result.history) == 3
    assert watcher.epochs[0][1] == ["epoch", "seconds", "throughput", "train", "validation"]
    assert result.stopped_early


def test_an_exception_raised_by_a_callback_ends_training_and_reaches_the_caller():
    class Pruned(Exception):
        pass

    class Pruner:
        def on_epoch_end(self, record):
            if record["epoch"] == 2:
                raise Pruned

    with pytest.raises(Pruned):
        fit(_tiny_net(), _toy(), validation=_toy(), callbacks=[Pruner()])


def test_early_stopping_state_survives_a_checkpoint():
    from object2vec.training.early_stopping import EarlyStopping

    stop = EarlyStopping(patience=3, tolerance=0.0)
    for epoch, loss in enumerate([0.9, 0.5, 0.7], start=1):
        stop.update(epoch, loss)
    again = EarlyStopping(patience=3, tolerance=0.0)
    again.load_state_dict(stop.state_dict())
    assert (again.best_epoch, again.bad_epochs, again.should_stop) == (2, 1, False)
    assert not again.update(4, 0.75) and again.bad_epochs == 2  # compared with epoch 3's 0.7, kept in the state
    assert not again.update(5, 0.8) and again.should_stop


def test_the_checkpointer_refuses_a_checkpoint_of_another_seed(tmp_path):
    from object2vec.errors import CheckpointError
    from object2vec.training.checkpoint import Checkpointer

    net = _tiny_net()
    Checkpointer(tmp_path, net, seed=1).save(epoch=2, batch=0)
    assert Checkpointer(tmp_path, net, seed=1).load(torch.device("cpu"))["epoch"] == 2
    with pytest.raises(CheckpointError, match="other hyperparameters or seed"):
        Checkpointer(tmp_path, net, seed=2).load(torch.device("cpu"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]


def test_pooled_embedding_forcing_the_token_dim_to_enc_dim_is_said_in_one_line(tiny, records, caplog):
    caplog.set_level(logging.INFO, logger="object2vec")
    Object2Vec(**{**tiny, "enc0_token_embedding_dim": 300, "epochs": 1}).fit(records[:64])
    said = [r.getMessage() for r in caplog.records if "token embedding dim" in r.getMessage()]
    assert said == [
        "Inconsistent enc_dim and token embedding dim for pooled_embedding (enc0_token_embedding_dim=300, "
        "enc1_token_embedding_dim=300 vs enc_dim=16): setting the token embedding dim to 16."
    ]
    caplog.clear()
    Object2Vec(**{**tiny, "enc0_token_embedding_dim": 16, "epochs": 1}).fit(records[:64])
    assert not [r for r in caplog.records if "token embedding dim" in r.getMessage()]
