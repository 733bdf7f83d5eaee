"""The HTTP endpoint: SageMaker's inference container contract, served by FastAPI on uvicorn.

Routes (what SageMaker real-time endpoints and batch transform call):

* ``GET /ping`` → 200 once the model is loaded (it is loaded before the socket opens).
* ``POST /invocations`` → scores / embeddings (:mod:`object2vec.serving.protocol`).
* ``GET /execution-parameters`` → what batch transform should send us.

Bad requests get 400 (malformed body, bad instance: its index and field are named; the first 20
problems are listed, with a count of all), 406 (Accept), 413 (body over ``max_payload_mb``, or more
than ``max_instances`` instances) or 415 (Content-Type), always with a JSON body; an unexpected
failure is a 500 with a JSON body and the server keeps serving. A client that hangs up before its
request is read is logged as 499, not a failure. One log line per request.

Decoding, inference and encoding run in a worker thread, never on the event loop: SageMaker's
health check (``/ping``) is answered within milliseconds while the largest request is computed.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..errors import Object2VecError
from .predictor import InstanceError, Predictor
from .protocol import JSON, ContentType, ProtocolError, decode_instances, encode_predictions, parse_accept, parse_content_type

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD_MB = 6.0  # SageMaker's default MaxPayloadInMB (batch transform) and real-time request limit
DEFAULT_MAX_INSTANCES = 100_000  # ~5 s of work on one core: a bound on one request's time and memory
CLIENT_CLOSED = 499  # nginx's status for a client that hung up (logged only: nobody reads the answer)
PREFERRED_MODES = ("classification", "embedding")
_SETTINGS_ENV = "OBJECT2VEC_SERVE_SETTINGS"  # how `serve --workers N` hands settings to each worker


@dataclass(frozen=True)
class ServeSettings:
    """Everything a worker needs to answer requests; travels to uvicorn workers as JSON."""

    model_dir: str
    device: str = "cpu"
    max_payload_mb: float = DEFAULT_MAX_PAYLOAD_MB
    workers: int = 1
    preferred_mode: str | None = None
    batch_size: int = 1024
    runtime: str = "torch"  # or "onnx": the graphs of `object2vec export --format onnx` (an extension)
    max_instances: int = DEFAULT_MAX_INSTANCES

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_mb * 1024 * 1024)

    def to_env(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_env(cls) -> ServeSettings:
        return cls(**orjson.loads(os.environ[_SETTINGS_ENV]))


def preferred_mode_from_env() -> str | None:
    """``INFERENCE_PREFERRED_MODE``: ``classification`` or ``embedding`` (anything else is an error)."""
    value = os.environ.get("INFERENCE_PREFERRED_MODE", "").strip().lower()
    if not value:
        return None
    if value not in PREFERRED_MODES:
        raise Object2VecError(f"INFERENCE_PREFERRED_MODE={value!r}; expected one of {', '.join(PREFERRED_MODES)}")
    return value


def create_app(predictor: Predictor, settings: ServeSettings) -> FastAPI:
    """The ASGI application around one loaded model."""
    app = FastAPI(title="object2vec", docs_url=None, redoc_url=None, openapi_url=None)
    limit = settings.max_payload_bytes
    _warm_up(predictor, settings.preferred_mode)

    @app.get("/ping")
    async def ping() -> Response:
        return Response(b"", status_code=200)

    @app.get("/execution-parameters")
    async def execution_parameters() -> Response:
        return Response(
            orjson.dumps(
                {
                    "MaxConcurrentTransforms": settings.workers,
                    "BatchStrategy": "MULTI_RECORD",
                    "MaxPayloadInMB": max(1, int(settings.max_payload_mb)),  # SageMaker takes whole MB
                }
            ),
            media_type=JSON,
        )

    def answer(body: bytes, content_type: ContentType, accept: str, state: Any) -> bytes:
        """Everything CPU-bound about one request (run in a worker thread)."""
        instances, locate = decode_instances(body, content_type.media)
        state.instances = len(instances)
        if len(instances) > settings.max_instances:
            raise ProtocolError(
                413,
                f"{len(instances)} instances; the limit is {settings.max_instances} per request (--max-instances): split the request",
            )
        try:
            results = predictor.run(instances, content_type.max_seqlens, locate)
        except InstanceError as e:
            raise ProtocolError.from_instances(e) from None
        return encode_predictions(results, accept)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        try:
            content_type = parse_content_type(request.headers.get("content-type"))
            accept = parse_accept(request.headers.get("accept"), content_type.media)
            body = await _read_body(request, limit)
            out = await run_in_threadpool(answer, body, content_type, accept, request.state)
            return Response(out, media_type=accept)
        except ProtocolError as e:
            return Response(e.body(), status_code=e.status, media_type=JSON)
        except ClientDisconnect:
            log.info("POST /invocations: the client hung up before its request was read")
            return Response(b"", status_code=CLIENT_CLOSED)
        except Exception as e:  # never let one request take the server down
            log.exception("POST /invocations failed")
            return Response(orjson.dumps({"error": f"internal error: {type(e).__name__}: {e}"}), status_code=500, media_type=JSON)

    app.add_middleware(RequestLog)
    return app


class RequestLog:
    """ASGI middleware: one log line per request (method, path, status, instances, latency)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            count = scope.get("state", {}).get("instances")
            log.info(
                "%s %s %d%s %.2f ms",
                scope["method"],
                scope["path"],
                status,
                "" if count is None else f" {count} instances",
                (time.perf_counter() - start) * 1e3,
            )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(
            413,
            f"request body is {int(declared)} bytes; the limit is {limit} bytes (--max-payload-mb, SAGEMAKER_MAX_PAYLOAD_IN_MB)",
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(
                413, f"request body exceeds the limit of {limit} bytes (--max-payload-mb, SAGEMAKER_MAX_PAYLOAD_IN_MB)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _warm_up(predictor: Predictor, preferred_mode: str | None) -> None:
    """Run the preferred path once so the first real request does not pay for lazy initialisation."""
    pair: dict[str, Any] = {"in0": [0], "in1": [0]}
    if predictor.model._text is not None:
        pair = {"in0": "", "in1": ""}
    try:
        if preferred_mode in (None, "classification"):
            predictor.run([pair])
        if preferred_mode in (None, "embedding"):
            predictor.run([{"in0": pair["in0"]}, {"in1": pair["in1"]}])
    except Object2VecError:  # a text model may refuse the empty string; warming up is only an optimisation
        pass


def load_predictor(settings: ServeSettings, device: str | None = None) -> Predictor:
    """The engine the settings name: the PyTorch model, or its exported ONNX graphs."""
    if settings.runtime == "onnx":
        from .onnx import OnnxPredictor

        return OnnxPredictor.load(settings.model_dir, device or settings.device, settings.batch_size)
    return Predictor.load(settings.model_dir, device or settings.device, settings.batch_size)


def app_from_environment() -> FastAPI:
    """uvicorn factory for ``serve --workers N``: each worker process loads the model itself."""
    settings = ServeSettings.from_env()
    configure_threads(settings.workers)
    app = create_app(load_predictor(settings), settings)
    quiet_garbage_collector()
    return app


def quiet_garbage_collector() -> None:
    """Keep Python's cycle collector from holding the GIL for a second in the middle of a request.

    A request of 100,000 instances allocates some 300,000 containers; at the default thresholds
    that starts a dozen full collections, each walking every object torch and the model created
    (~0.5 s apiece on a busy core), during which ``/ping`` cannot be answered. So, once the model
    is loaded and warmed up, its objects are frozen out of the collector's view (``gc.freeze``,
    as prefork servers do) and young objects are collected every 100,000 allocations instead of
    700 (request data holds no cycles: reference counting frees it).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 10, 10)


def configure_threads(workers: int) -> None:
    """Share the cores among workers: intra-op threads = cores // workers (at least 1)."""
    import torch

    from .container import available_cores

    torch.set_num_threads(max(1, available_cores() // max(1, workers)))


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Load the model (a bad folder fails here, before the socket opens), then listen until interrupted."""
    import uvicorn

    from ..estimator import resolve_device

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {"host": host, "port": port, "log_level": log_level, "access_log": False}
    device = resolve_device(settings.device)  # a device this machine lacks: one clear error, before anything loads
    where = (
        f"http://{host}:{port} ({settings.workers} worker{'s' * (settings.workers > 1)}, device {device}, "
        f"payload limit {settings.max_payload_mb:g} MB)"
    )
    if settings.workers == 1:
        configure_threads(1)
        predictor = load_predictor(settings)
        log.info("serving %s on %s", settings.model_dir, where)
        app = create_app(predictor, settings)
        quiet_garbage_collector()
        uvicorn.run(app, **options)
        return
    load_predictor(settings, device="cpu")  # validate once in the parent
    log.info("serving %s on %s", settings.model_dir, where)
    os.environ[_SETTINGS_ENV] = settings.to_env()
    uvicorn.run("object2vec.serving.app:app_from_environment", factory=True, workers=settings.workers, **options)
