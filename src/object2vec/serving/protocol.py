"""SageMaker's inference wire format for Object2Vec, independent of any web framework.

Requests::

    Content-Type: application/json[; infer_max_seqlens=<in0>,<in1>]     {"instances": [{...}, ...]}
    Content-Type: application/jsonlines[; infer_max_seqlens=...]        one {...} per line

Responses (``Accept``; absent or ``*/*`` means the request's own format, so a JSON Lines request
gets one result per line, as batch transform with ``SplitType=Line`` / ``AssembleWith=Line`` needs)::

    application/json        {"predictions": [{"scores": [...]}, {"embeddings": [...]}, ...]}
    application/jsonlines   one {"scores": [...]} or {"embeddings": [...]} per line

Problems raise :class:`ProtocolError` carrying the HTTP status (400, 406, 413, 415) and a JSON body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .predictor import InstanceError, parse_max_seqlens

JSON = "application/json"
JSONLINES = "application/jsonlines"
_ALIASES = {
    "application/json": JSON,
    "application/jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/x-ndjson": JSONLINES,
}
_DUMP = orjson.OPT_SERIALIZE_NUMPY


class ProtocolError(Exception):
    """A request we answer with a 4xx status and a JSON body ``{"error": ..., "problems": [...]}``."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []

    def body(self) -> bytes:
        out: dict[str, Any] = {"error": self.message}
        if self.problems:
            out["problems"] = self.problems
        return orjson.dumps(out)

    @classmethod
    def from_instances(cls, error: InstanceError) -> ProtocolError:
        """400, the first problem's line as the error, and each problem as ``{"instance", "field", "message"}``
        (``instance`` -1 for a problem of the whole request)."""
        first = error.problems[0]
        more = f" (and {error.count - 1} more)" if error.count > 1 else ""
        details = [
            {
                "instance": p.location if isinstance(p.location, int) else -1,
                "field": p.field,
                "message": p.message(advice=False),
            }
            for p in error.found
        ]
        return cls(400, f"{first}{more}", details)


@dataclass(frozen=True)
class ContentType:
    media: str  # JSON or JSONLINES
    max_seqlens: tuple[int, int] | None


def parse_content_type(header: str | None) -> ContentType:
    """The request format and the optional ``infer_max_seqlens`` parameter."""
    if not header:
        raise ProtocolError(415, f"missing Content-Type; expected {JSON} or {JSONLINES}")
    media, *params = (part.strip() for part in header.split(";"))
    kind = _ALIASES.get(media.lower())
    if kind is None:
        raise ProtocolError(415, f"Content-Type {media!r} is not supported; expected {JSON} or {JSONLINES}")
    max_seqlens = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "infer_max_seqlens":
            try:
                max_seqlens = parse_max_seqlens(value.strip().strip('"'))
            except ValueError as e:
                raise ProtocolError(400, f"Content-Type: {e}") from None
    return ContentType(kind, max_seqlens)


def parse_accept(header: str | None, request_media: str = JSON) -> str:
    """The response format: the first supported type listed in ``Accept``; absent, ``*/*`` or
    ``application/*`` answer in the request's own format (``request_media``).

    >>> parse_accept(None, JSONLINES), parse_accept("*/*", JSON), parse_accept("application/json", JSONLINES)
    ('application/jsonlines', 'application/json', 'application/json')
    """
    if not header:
        return request_media
    for part in header.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("*/*", "application/*"):
            return request_media
        if media in _ALIASES:
            return _ALIASES[media]
    raise ProtocolError(406, f"Accept {header!r} is not supported; expected {JSON} or {JSONLINES}")


def decode_instances(body: bytes, media: str) -> tuple[list[Any], Callable[[int], str]]:
    """The request's instances in order, and how to name instance ``i`` in messages.

    Instances are named ``instances[i]`` in a JSON body and ``line N`` in a JSON Lines body.
    """
    if media == JSON:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ProtocolError(400, f'malformed JSON ({e}); expected {{"instances": [...]}}') from None
        if type(doc) is not dict or "instances" not in doc:
            got = f"an object with keys {sorted(doc)}" if type(doc) is dict else f"a JSON {type(doc).__name__}"
            raise ProtocolError(400, f'body is {got}; expected {{"instances": [...]}}')
        instances = doc["instances"]
        if type(instances) is not list:
            raise ProtocolError(400, f"instances is a JSON {type(instances).__name__}; expected a list of objects")
        locate: Callable[[int], str] = "instances[{}]".format
    else:
        instances, lines = [], []
        for lineno, line in enumerate(body.splitlines(), 1):
            if not line.strip():
                continue
            try:
                instances.append(orjson.loads(line))
                lines.append(lineno)
            except orjson.JSONDecodeError as e:
                raise ProtocolError(400, f"line {lineno}: malformed JSON ({e}); expected one JSON object per line") from None
        locate = lambda i: f"line {lines[i]}"  # noqa: E731
    if not instances:
        raise ProtocolError(400, "instances: empty; expected at least one instance")
    return instances, locate


def encode_predictions(results: list[dict[str, np.ndarray]], media: str) -> bytes:
    """SageMaker's response body for ``results`` (one dict per instance) in ``media``."""
    if media == JSON:
        return orjson.dumps({"predictions": results}, option=_DUMP)
    return b"".join(orjson.dumps(r, option=_DUMP | orjson.OPT_APPEND_NEWLINE) for r in results)
