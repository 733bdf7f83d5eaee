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

import itertools
import re
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


MAX_LISTED = 20  # problems listed in an error body: a request of 100,000 bad instances gets 20 and a count


class ProtocolError(Exception):
    """A request we answer with a 4xx status and a JSON body ``{"error": ..., "problems": [...]}``
    (the first :data:`MAX_LISTED` problems, and ``"problem_count"`` when there are more)."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None, count: int | None = None):
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []
        self.count = max(len(self.problems), count or 0)  # all problems, listed or not

    def body(self) -> bytes:
        out: dict[str, Any] = {"error": self.message}
        if self.problems:
            out["problems"] = self.problems[:MAX_LISTED]
        if self.count > MAX_LISTED:
            out["problem_count"] = self.count
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
            for p in error.found[:MAX_LISTED]
        ]
        return cls(400, f"{first}{more}", details, count=error.count)


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
            doc = loads_in_pieces(body)
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
    """SageMaker's response body for ``results`` (one dict per instance) in ``media``, encoded
    :data:`PIECE_RESULTS` results at a time (one long call would hold the GIL, see :func:`loads_in_pieces`)."""
    pieces = [results[i : i + PIECE_RESULTS] for i in range(0, len(results), PIECE_RESULTS)]
    if media == JSON:
        return b'{"predictions":[' + b",".join(orjson.dumps(p, option=_DUMP)[1:-1] for p in pieces) + b"]}"
    return b"".join(orjson.dumps(r, option=_DUMP | orjson.OPT_APPEND_NEWLINE) for r in results)


PIECE_BYTES = 128 * 1024  # about 10 ms of parsing
PIECE_RESULTS = 4096
_BETWEEN_INSTANCES = re.compile(rb"\}\s*,\s*\{")


def loads_in_pieces(body: bytes) -> Any:
    """``orjson.loads(body)``, parsed :data:`PIECE_BYTES` at a time when it is a large
    ``{"instances": [...]}``.

    orjson holds the GIL while it parses: 6 MB of small instances take a second on a busy core, and
    the event loop (``/ping``) would wait that long for the worker thread. So the instances list is
    cut between two instances (``}, {``) every :data:`PIECE_BYTES`, each piece is parsed alone
    (``[`` + piece + ``]``), and the lists are joined. A cut anywhere else (inside a string, or deeper
    in an instance) leaves the brackets of a piece unbalanced, so its parse fails; then, as for a
    small or malformed body, the whole body is parsed at once and gives the same result or error.
    """
    cuts = []
    position = PIECE_BYTES
    while position < len(body) and (m := _BETWEEN_INSTANCES.search(body, position)):
        cuts.append(m)
        position = m.end() + PIECE_BYTES
    if not cuts:
        return orjson.loads(body)
    try:
        head = orjson.loads(body[: cuts[0].start() + 1] + b"]}")  # {..., "instances": [first instances]}
        if type(head) is not dict or not head or list(head)[-1] != "instances" or type(head["instances"]) is not list:
            return orjson.loads(body)
        instances = head["instances"]
        for before, after in itertools.pairwise(cuts):
            instances += orjson.loads(b"[" + body[before.end() - 1 : after.start() + 1] + b"]")
        tail = orjson.loads(b'{"\x00":[' + body[cuts[-1].end() - 1 :])  # the last instances, then the keys after them
    except orjson.JSONDecodeError:
        return orjson.loads(body)
    rest = list(tail.items())
    if type(tail) is not dict or rest[0][0] != "\x00" or "instances" in tail:  # a repeated key: the parser decides
        return orjson.loads(body)
    instances += rest[0][1]
    head.update(rest[1:])
    return head
