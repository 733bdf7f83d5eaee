"""The endpoint under hostile load (issue 16, item 12): an error lists at most 20 problems and a
count, a request holds at most ``max_instances`` instances, ``/ping`` answers while the largest
request is computed, and a client that hangs up is not a server error."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import TINY
from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs
from object2vec.serving.app import ServeSettings, create_app
from object2vec.serving.predictor import Predictor


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    Object2Vec(seed=0, device="cpu", **{**TINY, "epochs": 1}).fit(make_pairs(64, seed=1)).save(folder)
    return folder


def app_for(model_dir: Path, **settings):
    return create_app(Predictor.load(model_dir, "cpu"), ServeSettings(model_dir=str(model_dir), **settings))


def post(client: TestClient, instances: list) -> tuple[int, dict, int]:
    r = client.post("/invocations", content=orjson.dumps({"instances": instances}), headers={"Content-Type": "application/json"})
    return r.status_code, r.json(), len(r.content)


def test_an_error_lists_the_first_20_problems_and_counts_them_all(model_dir):
    status, body, size = post(TestClient(app_for(model_dir)), [7] * 5000 + [{"in0": [999], "in1": [1]}] * 5000)
    assert status == 400
    assert len(body["problems"]) == 20 and body["problem_count"] == 10000
    assert body["error"] == "instances[0]: is an integer; expected an object with in0 and/or in1 (and 9999 more)"
    assert size < 5000  # not the ~50 bytes per instance of the whole list


def test_more_instances_than_the_limit_is_413(model_dir):
    client = TestClient(app_for(model_dir, max_instances=3))
    assert post(client, [{"in0": [1], "in1": [2]}] * 3)[0] == 200
    status, body, _ = post(client, [{"in0": [1], "in1": [2]}] * 4)
    assert status == 413 and body["error"] == "4 instances; the limit is 3 per request (--max-instances): split the request"


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(model_dir, caplog):
    app = app_for(model_dir)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/invocations", "raw_path": b"/invocations", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8080),
    }  # fmt: skip
    with caplog.at_level("INFO", logger="object2vec.serving.app"):
        asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 499
    assert "POST /invocations 499" in caplog.text and "Traceback" not in caplog.text


def test_ping_answers_while_an_invocation_is_being_computed(model_dir):
    """Inference runs in a worker thread: the event loop answers /ping meanwhile (it used to wait
    for the whole request: 7.8 s for 150,000 instances). benchmarks/fault_injection.py measures the
    latency against a real server."""
    httpx = pytest.importorskip("httpx")
    predictor = Predictor.load(model_dir, "cpu")
    app = create_app(predictor, ServeSettings(model_dir=str(model_dir)))
    computing, release = threading.Event(), threading.Event()
    released: list[bool] = []
    run = predictor.run

    def slow_run(*args, **kwargs):
        computing.set()
        released.append(release.wait(timeout=10))  # run on the event loop (the old code), /ping could not release it
        return run(*args, **kwargs)

    predictor.run = slow_run

    async def scenario() -> tuple[float, int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://endpoint") as client:
            body = orjson.dumps({"instances": [{"in0": [1], "in1": [2]}]})
            big = asyncio.create_task(client.post("/invocations", content=body, headers={"Content-Type": "application/json"}))
            while not computing.is_set():
                await asyncio.sleep(0.01)
            start = time.perf_counter()
            ping = await client.get("/ping")
            waited = time.perf_counter() - start
            release.set()
            return waited, ping.status_code, (await big).status_code

    waited, ping, answer = asyncio.run(scenario())
    assert ping == 200 and answer == 200
    assert released == [True]  # /ping was answered while the invocation was still computing
    assert waited < 5


def test_a_large_json_body_is_parsed_in_pieces_with_the_same_result():
    from object2vec.serving.protocol import PIECE_BYTES, loads_in_pieces

    instances = [
        {"in0": [i, 1], "in1": [2], "note": "a},{b" if i % 7 == 0 else "", "x": [{"a": 1}, {"b": 2}]} for i in range(20000)
    ]
    bodies = [
        orjson.dumps({"instances": instances}),
        orjson.dumps({"configuration": [{"k": 1}, {"k": 2}], "instances": instances, "after": [{"z": 0}, {"z": 1}]}),
        orjson.dumps({"other": [{"k": i} for i in range(50000)], "instances": []}),
        orjson.dumps({"instances": instances, "instances2": [{"a": 1}, {"b": 2}]}),
        orjson.dumps({"instances": instances})[:-2] + b'], "instances": [{"in0": [1]}]}',  # a repeated key: the last wins
    ]
    for body in bodies:
        assert len(body) > 2 * PIECE_BYTES
        parsed = loads_in_pieces(body)
        assert parsed == orjson.loads(body) and list(parsed) == list(orjson.loads(body))
    broken = bodies[0][:-3]
    with pytest.raises(orjson.JSONDecodeError) as ours:
        loads_in_pieces(broken)
    with pytest.raises(orjson.JSONDecodeError) as theirs:
        orjson.loads(broken)
    assert str(ours.value) == str(theirs.value)
