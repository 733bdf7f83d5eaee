"""ONNX Runtime beside PyTorch: latency of the pair scorer and of one encoder, per encoder type.

For each encoder a model of realistic size (vocabulary 20,000, enc_dim 256, sequences up to 50
tokens) is built with random weights (latency does not depend on training), saved, exported with
``object2vec export --format onnx`` and loaded both ways; both engines answer the same instances
through :meth:`Predictor.run` (parsing included, as the endpoint runs it). Prints the median
milliseconds per call for batches of 1 and 256 and the ratio PyTorch / ONNX (above 1: ONNX faster),
after checking that the two agree to 1e-5.

    .venv/bin/python benchmarks/onnx_latency.py [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from object2vec import Object2Vec
from object2vec.data.synthetic import make_pairs
from object2vec.serving.onnx import OnnxPredictor, export_onnx
from object2vec.serving.predictor import Predictor

VOCAB, ENC_DIM, MAX_LEN = 20_000, 256, 50
ENCODERS = {"pooled_embedding": {}, "hcnn": {"enc0_cnn_filter_width": 3, "enc0_layers": 2}, "bilstm": {"enc0_layers": 1}}


def build(folder: Path, network: str) -> Path:
    hp = {
        "enc0_network": network, "enc1_network": "enc0", "enc0_vocab_size": VOCAB, "enc0_max_seq_len": MAX_LEN,
        "enc_dim": ENC_DIM, "mlp_dim": 256, "mlp_layers": 1, "epochs": 1, "mini_batch_size": 64,
        **ENCODERS[network],
    }  # fmt: skip
    data = make_pairs(64, vocab_size=(VOCAB, VOCAB), max_len=(MAX_LEN, MAX_LEN))
    Object2Vec(**hp).fit(data, max_steps=1).save(folder / "model")  # weights as good as random: latency only
    export_onnx(folder / "model", folder / "onnx")
    return folder


def median_ms(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    instances = [
        {"in0": r["in0"], "in1": r["in1"]} for r in make_pairs(256, vocab_size=(VOCAB, VOCAB), max_len=(MAX_LEN, MAX_LEN), seed=5)
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for network in ENCODERS:
            folder = build(Path(tmp) / network, network)
            engines = {
                "pytorch": Predictor.load(folder / "model", device="cpu"),
                "onnx": OnnxPredictor(folder / "onnx", threads=args.threads),
            }
            a, b = (np.stack([r["scores"] for r in e.run(instances)]) for e in engines.values())
            assert np.abs(a - b).max() <= 1e-5, np.abs(a - b).max()
            for batch in (1, 256):
                for what, requests in (
                    ("scores", instances[:batch]),
                    ("embedding", [{"in0": i["in0"]} for i in instances[:batch]]),
                ):
                    ms = {name: median_ms(lambda e=e, r=requests: e.run(r), args.repeats) for name, e in engines.items()}
                    rows.append((network, what, batch, ms["pytorch"], ms["onnx"], ms["pytorch"] / ms["onnx"]))
    print(f"\n{args.threads} threads, median of {args.repeats} calls, Predictor.run (parsing included)\n")
    print("| encoder | output | batch | PyTorch ms | ONNX Runtime ms | PyTorch / ONNX |\n|---|---|---:|---:|---:|---:|")
    for network, what, batch, torch_ms, onnx_ms, ratio in rows:
        print(f"| {network} | {what} | {batch} | {torch_ms:.2f} | {onnx_ms:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
