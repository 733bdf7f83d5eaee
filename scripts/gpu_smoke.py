"""GPU smoke check: train the three benchmark configurations for a few hundred steps and print pairs/s.

Called by ``scripts/gpu_smoke.sh``. Each configuration runs object2vec's own training loop
(``object2vec.training.loop.fit`` with ``max_steps``) on random data held on the GPU's host side, in fp32 and
in bf16 autocast, so the numbers include everything a real step does (batch gathering, the host to
device copy, forward, backward, optimizer). With several GPUs it also runs the pooled configuration
under ``torchrun`` to check DDP with NCCL.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from object2vec.data.pairs import PairData, Side
from object2vec.hyperparameters import Hyperparameters
from object2vec.nn.model import Object2VecNet
from object2vec.training.loop import fit

CONFIGS = {
    # (a) pooled: 50k vocabularies, enc_dim 256, 20 tokens a side, batch 256, row_sparse
    "pooled": dict(enc0_network="pooled_embedding", vocab=50000, length=20, enc_dim=256, batch=256, token_dim=256),
    # (b) hcnn: 20k vocabularies, token dim 300, enc_dim 512, 50 tokens a side, batch 128
    "hcnn": dict(enc0_network="hcnn", vocab=20000, length=50, enc_dim=512, batch=128, token_dim=300),
    # (c) bilstm: same sizes as hcnn
    "bilstm": dict(enc0_network="bilstm", vocab=20000, length=50, enc_dim=512, batch=128, token_dim=300),
}


def random_data(n: int, vocab: int, length: int, seed: int = 0) -> PairData:
    rng = np.random.default_rng(seed)

    def side() -> Side:
        return Side(rng.integers(0, vocab, n * length).astype(np.int32), np.arange(0, (n + 1) * length, length, dtype=np.int64))

    return PairData(side(), side(), rng.integers(0, 2, n))


def measure(name: str, precision: str, steps: int, device: torch.device) -> float:
    c = CONFIGS[name]
    hp = Hyperparameters(
        enc0_network=c["enc0_network"], enc0_max_seq_len=c["length"], enc0_vocab_size=c["vocab"], enc0_token_embedding_dim=c["token_dim"],
        enc_dim=c["enc_dim"], mini_batch_size=c["batch"], token_embedding_storage_type="row_sparse", epochs=100,
    )  # fmt: skip
    data = random_data(c["batch"] * (steps + 20), c["vocab"], c["length"])
    torch.manual_seed(0)
    net = Object2VecNet(hp)
    fit(net, data, device=device, max_steps=20, precision=precision)  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fit(net, data, device=device, max_steps=steps, precision=precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * c["batch"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; {args.steps} timed steps per row\n")
    print("| configuration | precision | pairs/s |")
    print("|---|---|---|")
    for config in CONFIGS:
        for precision in ("fp32", "bf16"):
            print(f"| {config} | {precision} | {measure(config, precision, args.steps, device):,.0f} |", flush=True)


if __name__ == "__main__":
    main()
