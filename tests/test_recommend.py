"""Recommendations and ranking metrics: the model's own pair score, explicit ties, honest metrics."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from object2vec.errors import DataError
from object2vec.retrieval.items import vocabulary_items
from object2vec.retrieval.recommend import evaluate_ranking, pair_scores, query_vector, ranking_metrics, recommend, seen_items
from usecases_data import (
    BAND,
    GROUPS,
    one_thread,  # noqa: F401 - autouse fixture
    pairs,
    trained_model,
)

MATCH = np.random.default_rng(1234).permutation(GROUPS)  # make_pairs' structure: in0 group g likes in1 group MATCH[g]


@pytest.fixture(scope="module")
def model():
    return trained_model()


@pytest.fixture(scope="module")
def constant_model(model):
    """Scores every pair alike: the output layer ignores its input."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.model_.output.weight.zero_()
    return m


# --------------------------------------------------------------------------------------------------
# ranking_metrics


def test_a_perfect_ranking_scores_one_everywhere():
    metrics = ranking_metrics([np.array([0.9, 0.1, 0.5])], [[0]], k=1)
    assert metrics == {"hits@1": 1.0, "ndcg@1": 1.0, "mrr": 1.0, "queries": 1, "positives": 1}


def test_a_model_that_scores_every_item_alike_does_not_get_a_perfect_rank():
    # StarSpace's trap: a positive tied with every candidate must not count as rank 1.
    pessimistic = ranking_metrics([np.zeros(100)], [[7]], k=10)
    assert pessimistic["hits@10"] == 0 and pessimistic["ndcg@10"] == 0 and pessimistic["mrr"] == pytest.approx(1 / 100)
    expected = ranking_metrics([np.zeros(100)], [[7]], k=10, ties="expected")
    assert expected["hits@10"] == pytest.approx(10 / 100)  # exactly a random ranking's expectation
    assert expected["mrr"] == pytest.approx(sum(1 / r for r in range(1, 101)) / 100, abs=1e-6)


def test_partial_ties_take_the_pessimistic_or_the_expected_rank():
    scores, positive = np.array([3.0, 2.0, 2.0, 2.0, 1.0]), [2]  # one above, two tied: ranks 2, 3 or 4
    pessimistic = ranking_metrics([scores], [positive], k=2)
    assert pessimistic["hits@2"] == 0 and pessimistic["mrr"] == pytest.approx(1 / 4)
    expected = ranking_metrics([scores], [positive], k=2, ties="expected")
    assert expected["hits@2"] == pytest.approx(1 / 3)
    assert expected["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3, abs=1e-6)
    assert expected["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 3, abs=1e-6)


def test_ndcg_of_one_relevant_item_is_the_discount_of_its_rank():
    metrics = ranking_metrics([np.array([5.0, 4.0, 3.0, 2.0])], [[2]], k=3)
    assert metrics["ndcg@3"] == pytest.approx(1 / math.log2(4)) and metrics["mrr"] == pytest.approx(1 / 3)
    assert ranking_metrics([np.array([5.0, 4.0, 3.0, 2.0])], [[2]], k=2)["ndcg@2"] == 0


def test_other_positives_of_a_query_are_filtered_out_of_each_others_ranks():
    metrics = ranking_metrics([np.array([5.0, 4.0, 3.0])], [[0, 1]], k=1)
    assert metrics["hits@1"] == 1.0 and metrics["positives"] == 2


def test_queries_without_positives_are_skipped_and_cases_are_averaged():
    metrics = ranking_metrics([np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])], [[0], [], [0]], k=1)
    assert metrics["queries"] == 2 and metrics["hits@1"] == 0.5


@pytest.mark.parametrize(
    ("scores", "positives", "kwargs", "message"),
    [
        ([np.array([np.nan, 1.0])], [[0]], {}, "NaN"),
        ([np.array([1.0, 0.0])], [[2]], {}, "position 2 is outside its 2 candidates"),
        ([np.array([1.0])], [[0]], {"ties": "optimistic"}, "ties must be one of pessimistic, expected"),
        ([np.array([1.0])], [[0], [0]], {}, "1 score lists for 2 positive lists"),
    ],
)
def test_invalid_inputs_to_the_metrics_are_refused(scores, positives, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ranking_metrics(scores, positives, **kwargs)


# --------------------------------------------------------------------------------------------------
# recommend


def test_pair_scores_are_the_log_odds_of_what_predict_returns(model):
    scores = pair_scores(model, query_vector(model, 3)[None], vocabulary_items(model, "in1").vectors(model))[0]
    probabilities = model.predict([{"in0": [3], "in1": [t]} for t in range(len(scores))])[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-scores.astype(np.float64))), probabilities, atol=1e-5)


def test_recommendations_are_the_items_of_the_matched_group(model):
    user = 3  # group 0
    ranked = recommend(model, user, k=BAND)
    groups = [item // BAND for item, _ in ranked]
    assert sum(g == MATCH[0] for g in groups) >= BAND - 1
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)


def test_excluded_items_are_left_out_and_unknown_exclusions_ignored(model):
    best = [item for item, _ in recommend(model, 3, k=3)]
    again = [item for item, _ in recommend(model, 3, k=3, exclude=[best[0], "not-an-item", 10_000])]
    assert best[0] not in again and again[:2] == best[1:]


def test_candidates_can_be_ids_a_mapping_or_a_file_of_multi_token_items(model, tmp_path):
    assert {i for i, _ in recommend(model, 3, k=3, candidates=[1, 2, 3])} == {1, 2, 3}
    mapping = recommend(model, 3, k=2, candidates={"good": [MATCH[0] * BAND], "bad": [(MATCH[0] + 1) % GROUPS * BAND]})
    assert [i for i, _ in mapping] == ["good", "bad"]
    file = tmp_path / "candidates.jsonl"
    file.write_text('{"id": "pair", "in1": [1, 2]}\n{"id": "one", "in1": [4]}\n')
    assert {i for i, _ in recommend(model, 3, k=2, candidates=file)} == {"pair", "one"}


def test_an_empty_candidate_list_is_refused(model):
    with pytest.raises(DataError, match="candidates: empty; expected at least one in1 item"):
        recommend(model, 3, candidates=[])


def test_k_larger_than_the_catalogue_returns_every_candidate_with_a_warning(model):
    with pytest.warns(UserWarning, match="k=500 is more than the 90 candidates left"):
        assert len(recommend(model, 3, k=500)) == 90


def test_an_unknown_in0_token_is_named(model):
    with pytest.raises(DataError, match=r"in0 query: in0: token 0 is 90, not less than enc0_vocab_size=90"):
        recommend(model, 90)


def test_embedding_similarity_is_a_cosine(model):
    ranked = recommend(model, 3, k=90, by="embedding")
    assert all(-1.0001 <= s <= 1.0001 for _, s in ranked)
    with pytest.raises(DataError, match="by: 'votes' is not a ranking"):
        recommend(model, 3, by="votes")


def test_seen_items_are_every_in1_paired_with_the_in0(model):
    train = [{"label": 1, "in0": [3], "in1": [51]}, {"label": 0, "in0": [3], "in1": [7]}, {"label": 1, "in0": [4], "in1": [9]}]
    assert seen_items(model, train, 3, vocabulary_items(model, "in1")) == [51, 7]


# --------------------------------------------------------------------------------------------------
# evaluate_ranking


def test_the_trained_model_ranks_held_out_positives_far_above_chance(model):
    metrics = evaluate_ranking(model, pairs(300, seed=2), k=10)
    assert metrics["hits@10"] >= 0.9  # chance: 10 of 90 candidates
    assert metrics["candidates"] == 90 and metrics["skipped"] == 0 and metrics["queries"] > 50


def test_excluding_seen_pairs_ranks_positives_higher(model):
    held_out, train = pairs(300, seed=2), pairs(2000, seed=1)
    assert evaluate_ranking(model, held_out, exclude=train)["mrr"] > evaluate_ranking(model, held_out)["mrr"]


def test_a_constant_model_ranks_like_chance_at_best(constant_model):
    held_out = pairs(300, seed=2)
    assert evaluate_ranking(constant_model, held_out, k=10)["hits@10"] == 0
    expected = evaluate_ranking(constant_model, held_out, k=10, ties="expected")
    # each positive is ranked among the 90 candidates less its query's other positives
    positives: dict[int, set[int]] = {}
    for r in held_out:
        if r["label"] == 1:
            positives.setdefault(r["in0"][0], set()).add(r["in1"][0])
    chance = [10 / (90 - len(items) + 1) for items in positives.values() for _ in items]
    assert expected["hits@10"] == pytest.approx(np.mean(chance), abs=1e-5)


def test_positives_outside_the_candidates_are_skipped_and_counted(model):
    with pytest.warns(UserWarning, match="are not among the 3 candidates"):
        metrics = evaluate_ranking(model, pairs(300, seed=2), candidates=[0, 1, 2])
    assert metrics["skipped"] > 0 and metrics["candidates"] == 3
