"""Load test for ``object2vec serve``: requests/s and latency from a separate client process on loopback.

    .venv/bin/python benchmarks/serve_load.py                  # full run (about 1 minute)
    .venv/bin/python benchmarks/serve_load.py --quick          # a few seconds per scenario

What it does:

1. trains a ``pooled_embedding`` model (enc_dim 256, 50,000-token vocabularies, 20 tokens a side)
   for a few steps on synthetic pairs and saves it (the weights' values do not matter for speed);
2. starts ``object2vec serve`` on a free loopback port, waits for ``GET /ping``;
3. runs each scenario from a *separate* process: ``C`` keep-alive connections, each sending its next
   request as soon as the previous answer arrives, for ``--seconds`` (and at most ``--max-requests``);
4. prints requests/s, instances/s, p50/p99 latency and the error count (any non-200 answer to a valid
   request, or a wrong number of results), beside the same work done in-process without HTTP
   (``Predictor.run`` on the same instances: the ceiling the server is measured against).

The client is a small asyncio HTTP/1.1 client on raw sockets, so it costs the shared CPU far less
than a full HTTP library would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from harness import markdown_table

VOCAB, SEQ, ENC_DIM = 50_000, 20, 256


def build_model(folder: Path) -> None:
    from object2vec import Object2Vec

    rng = np.random.default_rng(0)
    records = [
        {
            "label": int(rng.integers(2)),
            "in0": rng.integers(VOCAB, size=SEQ).tolist(),
            "in1": rng.integers(VOCAB, size=SEQ).tolist(),
        }
        for _ in range(2048)
    ]
    model = Object2Vec(
        seed=0,
        device="cpu",
        enc0_network="pooled_embedding",
        enc0_vocab_size=VOCAB,
        enc0_max_seq_len=SEQ,
        enc_dim=ENC_DIM,
        mini_batch_size=256,
        epochs=1,
        token_embedding_storage_type="row_sparse",
    )
    model.fit(records)
    model.save(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payloads(rng: np.random.Generator) -> dict[str, tuple[bytes, int]]:
    """Request bodies by scenario: (body, instances per request)."""
    pair = {"in0": rng.integers(VOCAB, size=SEQ).tolist(), "in1": rng.integers(VOCAB, size=SEQ).tolist()}
    batch = [{"in1": rng.integers(VOCAB, size=SEQ).tolist()} for _ in range(1000)]
    return {
        "single pair": (orjson.dumps({"instances": [pair]}), 1),
        "1,000-instance embeddings": (orjson.dumps({"instances": batch}), 1000),
    }


# --------------------------------------------------------------------------------------------------
# client (runs in its own process)


async def _client(port: int, body: bytes, expect: int, deadline: float, budget: list[int], out: list[tuple[float, bool]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        b"POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Accept: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            data = await reader.readexactly(length)
            # one result object per instance (counted without parsing 3 MB of floats on the shared CPU)
            ok = status == 200 and data.startswith(b'{"predictions":[') and data.count(b'":[') - 1 == expect
            out.append((time.perf_counter() - start, ok))
    finally:
        writer.close()


async def _drive(port: int, body: bytes, expect: int, clients: int, seconds: float, max_requests: int) -> dict:
    out: list[tuple[float, bool]] = []
    budget = [max_requests]
    start = time.perf_counter()
    await asyncio.gather(*(_client(port, body, expect, start + seconds, budget, out) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    lat = np.array([t for t, _ in out]) * 1e3
    return {
        "requests": len(out),
        "seconds": elapsed,
        "errors": sum(not ok for _, ok in out),
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def client_main(args: argparse.Namespace) -> None:
    body = Path(args.body).read_bytes()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_drive(args.port, body, args.expect, args.clients, args.seconds, args.max_requests))
    sys.stdout.write(orjson.dumps(result).decode())


# --------------------------------------------------------------------------------------------------
# orchestration


def in_process(model_dir: Path, body: bytes, seconds: float) -> float:
    """Requests/s of Predictor.run on the same instances, no HTTP, one thread: the ceiling."""
    import torch

    from object2vec.serving.predictor import Predictor
    from object2vec.serving.protocol import decode_instances, encode_predictions

    torch.set_num_threads(1)
    predictor = Predictor.load(model_dir, "cpu")
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        instances, locate = decode_instances(body, "application/json")
        encode_predictions(predictor.run(instances, None, locate), "application/json")
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per scenario instead of 10 s")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections for single-pair requests")
    parser.add_argument("--batch-clients", type=int, default=4, help="concurrent connections for 1,000-instance batches")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_dir = tmp_path / "model"
        build_model(model_dir)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "object2vec", "serve", str(model_dir), "--port", str(port), "--workers", str(args.workers)],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "server.log", "wb"),  # noqa: SIM115
        )
        try:
            _wait_ready(port, server)
            rows = []
            for name, (body, expect) in payloads(np.random.default_rng(1)).items():
                clients = args.clients if expect == 1 else args.batch_clients
                body_file = tmp_path / "body.json"
                body_file.write_bytes(body)
                run = subprocess.run(
                    [sys.executable, __file__, "--client", "--port", str(port), "--body", str(body_file),
                     "--expect", str(expect), "--clients", str(clients), "--seconds", str(seconds),
                     "--max-requests", str(args.max_requests)],
                    capture_output=True, check=True, text=True,
                )  # fmt: skip
                r = orjson.loads(run.stdout)
                rps = r["requests"] / r["seconds"]
                ceiling = in_process(model_dir, body, min(seconds, 3.0))
                rows.append((name, clients, r["requests"], rps, rps * expect, r["p50"], r["p99"], r["errors"], rps / ceiling))
        finally:
            server.terminate()
            server.wait(timeout=30)
        lines = (tmp_path / "server.log").read_text().count("POST /invocations")
    print(f"\nobject2vec serve load test: pooled_embedding, enc_dim {ENC_DIM}, vocab {VOCAB:,}, {SEQ} tokens a side, "
          f"{args.workers} worker(s), {os.cpu_count()} cores, {seconds:.0f} s per scenario\n")  # fmt: skip
    header = ["scenario", "clients", "requests", "requests/s", "instances/s", "p50 ms", "p99 ms", "errors", "HTTP / in-process"]
    cells = [
        [name, str(clients), f"{n:,}", f"{rps:,.0f}", f"{ips:,.0f}", f"{p50:.2f}", f"{p99:.2f}", str(errors), f"{ratio:.2f}"]
        for name, clients, n, rps, ips, p50, p99, errors, ratio in rows
    ]
    print(markdown_table(header, cells, align=True))
    print(f"\nserver log lines for POST /invocations: {lines:,}")


def _wait_ready(port: int, server: subprocess.Popen, timeout: float = 60.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not answer /ping in time")


if __name__ == "__main__":
    main()
