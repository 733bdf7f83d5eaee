"""The HTTP endpoint speaks SageMaker Object2Vec's inference contract (instances in; scores or embeddings out) and survives bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import TINY, free_port, http, wait_for_ping
from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs
from object2vec.serving.app import ServeSettings, create_app
from object2vec.serving.predictor import Predictor

JSON, JSONL = "application/json", "application/jsonlines"


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("classifier")
    Object2Vec(seed=0, device="cpu", **{**TINY, "num_classes": 3}).fit(
        [{**r, "label": r["label"] + (i % 5 == 0)} for i, r in enumerate(make_pairs(300, seed=1))]
    ).save(folder)
    return folder


@pytest.fixture(scope="module")
def regressor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("regressor")
    data = make_pairs(300, seed=1, task="regression")
    Object2Vec(seed=0, device="cpu", **{**TINY, "output_layer": "mean_squared_error"}).fit(data).save(folder)
    return folder


def client_for(model_dir: Path, **settings) -> TestClient:
    predictor = Predictor.load(model_dir, "cpu")
    return TestClient(create_app(predictor, ServeSettings(model_dir=str(model_dir), **settings)))


@pytest.fixture(scope="module")
def client(classifier_dir: Path) -> TestClient:
    return client_for(classifier_dir)


def post(client: TestClient, body: bytes | dict, content_type: str = JSON, accept: str | None = None):
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return client.post("/invocations", content=data, headers=headers)


PAIR = {"in0": [1, 2, 3], "in1": [4, 5]}


# --- health and batch transform discovery ----------------------------------------------------------


def test_ping_answers_200(client):
    assert client.get("/ping").status_code == 200


def test_execution_parameters_tell_batch_transform_how_to_call(client):
    r = client.get("/execution-parameters")
    assert r.status_code == 200
    assert r.json() == {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


# --- every request/response shape SageMaker documents -----------------------------------------------------------


def test_json_pair_request_gets_softmax_scores_of_length_num_classes(client, classifier_dir):
    r = post(client, {"instances": [PAIR, {"in0": [7], "in1": [8, 9, 10]}]})
    assert r.status_code == 200 and r.headers["content-type"].startswith(JSON)
    predictions = r.json()["predictions"]
    assert [list(p) for p in predictions] == [["scores"], ["scores"]]
    for p in predictions:
        assert len(p["scores"]) == 3 and math.isclose(sum(p["scores"]), 1.0, rel_tol=1e-5)
    expected = Object2Vec.load(classifier_dir, device="cpu").predict([PAIR])[0]
    np.testing.assert_allclose(predictions[0]["scores"], expected, rtol=1e-6)


def test_jsonlines_request_and_response(client):
    body = orjson.dumps(PAIR) + b"\n\n" + orjson.dumps({"in0": [1]}) + b"\n"  # a blank line is not an instance
    r = post(client, body, JSONL, accept=JSONL)
    assert r.status_code == 200 and r.headers["content-type"].startswith(JSONL)
    lines = [orjson.loads(line) for line in r.content.splitlines()]
    assert list(lines[0]) == ["scores"] and list(lines[1]) == ["embeddings"]
    assert len(lines) == 2


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_a_jsonlines_request_without_accept_gets_one_result_per_line(client, accept):
    """Our decision (SageMaker documents no default): answer in the request's format, so a batch
    transform with SplitType=Line and AssembleWith=Line writes one result per input line."""
    r = post(client, orjson.dumps(PAIR) + b"\n" + orjson.dumps({"in1": [3]}) + b"\n", JSONL, accept=accept)
    assert r.status_code == 200 and r.headers["content-type"].startswith(JSONL)
    assert [list(orjson.loads(line)) for line in r.content.splitlines()] == [["scores"], ["embeddings"]]
    r = post(client, {"instances": [PAIR]}, JSON, accept=accept)  # and JSON stays JSON
    assert r.headers["content-type"].startswith(JSON) and list(r.json()["predictions"][0]) == ["scores"]


def test_json_request_with_jsonlines_response_and_the_reverse(client):
    r = post(client, {"instances": [PAIR]}, JSON, accept=JSONL)
    assert list(orjson.loads(r.content.splitlines()[0])) == ["scores"]
    r = post(client, orjson.dumps(PAIR), JSONL, accept=JSON)
    assert list(r.json()["predictions"][0]) == ["scores"]


def test_one_side_gets_that_encoders_embedding(client, classifier_dir):
    r = post(client, {"instances": [{"in0": [1, 2]}, {"in1": [1, 2]}]})
    e0, e1 = (p["embeddings"] for p in r.json()["predictions"])
    model = Object2Vec.load(classifier_dir, device="cpu")
    np.testing.assert_allclose(e0, model.embed(in0=[[1, 2]])[0], rtol=1e-6)
    np.testing.assert_allclose(e1, model.embed(in1=[[1, 2]])[0], rtol=1e-6)
    assert len(e0) == TINY["enc_dim"]


def test_mixed_request_keeps_instance_order(client):
    instances = [{"in1": [3]}, PAIR, {"in0": [4]}, PAIR]
    kinds = [next(iter(p)) for p in post(client, {"instances": instances}).json()["predictions"]]
    assert kinds == ["embeddings", "scores", "embeddings", "scores"]


def test_extra_keys_such_as_label_are_ignored(client):
    r = post(client, {"instances": [{**PAIR, "label": 1, "id": "a"}]})
    assert r.status_code == 200


def test_regression_scores_are_one_value(regressor_dir, tmp_path):
    r = post(client_for(regressor_dir), {"instances": [PAIR]})
    (score,) = r.json()["predictions"][0]["scores"]
    expected = Object2Vec.load(regressor_dir, device="cpu").predict([PAIR])[0, 0]
    assert math.isclose(score, expected, rel_tol=1e-6)


def test_results_do_not_depend_on_the_other_instances_in_the_request(client):
    alone = post(client, {"instances": [PAIR]}).json()["predictions"][0]
    crowd = post(client, {"instances": [{"in0": [9] * 10, "in1": [8]}] * 50 + [PAIR]}).json()["predictions"][-1]
    assert alone == crowd


def test_infer_max_seqlens_truncates_each_side(client):
    long = {"in0": [1, 2, 3, 4], "in1": [5, 6, 7]}
    short = {"in0": [1, 2], "in1": [5]}
    truncated = post(client, {"instances": [long]}, f"{JSON}; infer_max_seqlens=2,1").json()["predictions"][0]
    assert truncated == post(client, {"instances": [short]}).json()["predictions"][0]
    assert truncated != post(client, {"instances": [long]}).json()["predictions"][0]


# --- errors: 4xx with a JSON body naming the instance and the field ---------------------------------


def error_of(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(JSON)
    return r.json()


def test_malformed_json_is_400(client):
    assert "malformed JSON" in error_of(post(client, b'{"instances": [', JSON), 400)["error"]


def test_malformed_jsonlines_line_is_named(client):
    body = orjson.dumps(PAIR) + b"\n{nope\n"
    assert error_of(post(client, body, JSONL), 400)["error"].startswith("line 2: malformed JSON")


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-recordio-protobuf", ""])
def test_unsupported_or_missing_content_type_is_415(client, content_type):
    assert "Content-Type" in error_of(post(client, {"instances": [PAIR]}, content_type), 415)["error"]


def test_unsupported_accept_is_406(client):
    assert "Accept" in error_of(post(client, {"instances": [PAIR]}, JSON, accept="text/csv"), 406)["error"]


@pytest.mark.parametrize(
    "body, words",
    [
        ({"data": [PAIR]}, 'expected {"instances": [...]}'),
        ({"instances": {"in0": [1]}}, "expected a list"),
        ({"instances": []}, "empty"),
    ],
)
def test_missing_wrong_or_empty_instances_is_400(client, body, words):
    assert words in error_of(post(client, body), 400)["error"]


def test_instance_with_neither_side_names_its_index(client):
    body = error_of(post(client, {"instances": [PAIR, {"label": 1}]}), 400)
    assert body["problems"] == [
        {
            "instance": 1,
            "field": None,
            "message": "has neither in0 nor in1 (keys: label); expected both (pair scores) or one of them (embeddings)",
        }
    ]


@pytest.mark.parametrize(
    "instance, field, words",
    [
        ({"in0": [1, "two"], "in1": [3]}, "in0", "token 1 is"),
        ({"in0": [1], "in1": [2.5]}, "in1", "token 0 is 2.5"),
        ({"in0": [1], "in1": [True]}, "in1", "token 0 is"),
        ({"in0": "1 2", "in1": [3]}, "in0", "expected a non-empty list of integer token ids"),
        ({"in0": [], "in1": [3]}, "in0", "empty list"),
        ({"in0": [1], "in1": [-1]}, "in1", "never negative"),
        ({"in0": [1, 200], "in1": [3]}, "in0", "token 1 is 200, not less than enc0_vocab_size=200"),
        ({"in1": [10**30]}, "in1", "token 0 is 1e+30"),
    ],
)
def test_bad_token_ids_are_400_naming_instance_and_field(client, instance, field, words):
    body = error_of(post(client, {"instances": [PAIR, PAIR, instance]}), 400)
    (problem,) = body["problems"]
    assert problem["instance"] == 2 and problem["field"] == field and words in problem["message"]
    assert body["error"].startswith(f"instances[2]: {field}: ")


def test_a_client_is_told_what_is_wrong_but_not_to_retrain_the_model(client):
    body = error_of(post(client, {"instances": [PAIR, {"in0": [1, 200], "in1": [3]}]}), 400)
    expected = "token 1 is 200, not less than enc0_vocab_size=200; expected a token id in [0, 200)"
    assert body["problems"] == [{"instance": 1, "field": "in0", "message": expected}]
    assert body["error"] == f"instances[1]: in0: {expected}"


def test_every_bad_instance_is_listed(client):
    body = error_of(post(client, {"instances": [{"in0": [999]}, PAIR, {"in1": [-5]}, {"x": 1}]}), 400)
    assert [p["instance"] for p in body["problems"]] == [0, 2, 3]


def test_bad_infer_max_seqlens_is_400(client):
    for value in ("0,5", "5", "a,b", "6000,1"):
        assert (
            "infer_max_seqlens"
            in error_of(post(client, {"instances": [PAIR]}, f"{JSON}; infer_max_seqlens={value}"), 400)["error"]
        )


def test_oversize_payload_is_413(classifier_dir):
    small = client_for(classifier_dir, max_payload_mb=0.001)  # 1,048 bytes
    body = {"instances": [PAIR] * 100}
    assert "limit" in error_of(post(small, body), 413)["error"]
    assert post(small, {"instances": [PAIR]}).status_code == 200  # the server is still fine


def test_the_payload_limit_comes_from_sagemaker_max_payload_in_mb(monkeypatch):
    from object2vec.errors import Object2VecError
    from object2vec.serving.container import max_payload_mb

    monkeypatch.delenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", raising=False)
    assert max_payload_mb() == 6  # SageMaker's default MaxPayloadInMB
    for value, mb in (("20", 20), ("0.5", 0.5), ("0", 100)):  # 0: chunked, up to SageMaker's 100 MB cap
        monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", value)
        assert max_payload_mb() == mb
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "lots")
    with pytest.raises(Object2VecError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB='lots'"):
        max_payload_mb()


def test_a_9_mb_body_passes_a_20_mb_limit_and_is_refused_by_the_default(classifier_dir):
    body = orjson.dumps({"instances": [PAIR]}) + b" " * (9 * 1024 * 1024)
    assert post(client_for(classifier_dir, max_payload_mb=20), body).status_code == 200
    assert client_for(classifier_dir, max_payload_mb=20).get("/execution-parameters").json()["MaxPayloadInMB"] == 20
    error_of(post(client_for(classifier_dir), body), 413)


def test_oversize_payload_without_content_length_is_413(classifier_dir):
    small = client_for(classifier_dir, max_payload_mb=0.001)
    chunks = iter([orjson.dumps({"instances": [PAIR] * 100})])
    r = small.post("/invocations", content=chunks, headers={"Content-Type": JSON})  # chunked: no Content-Length
    error_of(r, 413)


def test_unexpected_failure_is_a_json_500_and_the_server_keeps_serving(classifier_dir, monkeypatch):
    c = client_for(classifier_dir)
    monkeypatch.setattr(Predictor, "scores", lambda *a: 1 / 0)
    assert "ZeroDivisionError" in error_of(post(c, {"instances": [PAIR]}), 500)["error"]
    monkeypatch.undo()
    assert post(c, {"instances": [PAIR]}).status_code == 200


def test_one_log_line_per_request(client, caplog):
    with caplog.at_level("INFO", logger="object2vec.serving.app"):
        post(client, {"instances": [PAIR, PAIR]})
        post(client, {"instances": []})
        client.get("/ping")
    lines = [r.getMessage() for r in caplog.records if r.name == "object2vec.serving.app"]
    assert len(lines) == 3
    assert lines[0].startswith("POST /invocations 200 2 instances ") and lines[0].endswith(" ms")
    assert lines[1].startswith("POST /invocations 400")
    assert lines[2].startswith("GET /ping 200")


def test_inference_preferred_mode_is_validated(monkeypatch):
    from object2vec.errors import Object2VecError
    from object2vec.serving.app import preferred_mode_from_env

    monkeypatch.setenv("INFERENCE_PREFERRED_MODE", "embedding")
    assert preferred_mode_from_env() == "embedding"
    monkeypatch.setenv("INFERENCE_PREFERRED_MODE", "speed")
    with pytest.raises(Object2VecError, match="classification, embedding"):
        preferred_mode_from_env()


# --- the real server, on a free port ---------------------------------------------------------------------


def test_object2vec_serve_listens_on_loopback_and_answers(classifier_dir):
    port = free_port()
    env = {**os.environ, "INFERENCE_PREFERRED_MODE": "classification"}
    process = subprocess.Popen(
        [sys.executable, "-m", "object2vec", "serve", str(classifier_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_for_ping(port, process)
        status, body = http(port, orjson.dumps({"instances": [PAIR, {"in1": [4]}]}))
        assert status == 200 and [list(p) for p in body["predictions"]] == [["scores"], ["embeddings"]]
        status, body = http(port, orjson.dumps({"instances": [{"in0": [10**6], "in1": [1]}]}))
        assert status == 400 and body["problems"][0]["field"] == "in0"
        status, _ = http(port, orjson.dumps({"instances": [PAIR]}))
        assert status == 200  # an out-of-vocabulary id never takes the server down
    finally:
        process.terminate()
        process.wait(timeout=20)
    log = process.stderr.read().decode()
    assert "POST /invocations 400 1 instances" in log


def test_serve_refuses_a_missing_model_before_listening(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "object2vec", "serve", str(tmp_path / "nope"), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_several_workers_each_load_the_model(classifier_dir):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "object2vec", "serve", str(classifier_dir), "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_ping(port, process, timeout=120)
        for _ in range(4):
            status, body = http(port, orjson.dumps({"instances": [PAIR]}))
            assert status == 200 and len(body["predictions"][0]["scores"]) == 3
    finally:
        process.terminate()
        process.wait(timeout=30)
