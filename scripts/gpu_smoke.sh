#!/usr/bin/env bash
# GPU smoke check (about 3 minutes on one GPU): install, run the GPU-relevant tests, print training
# throughput of the pooled, hcnn and bilstm benchmark configurations in fp32 and bf16, and with
# two or more GPUs train once under torchrun (DDP over NCCL).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || make .venv/.installed >/dev/null
PY=.venv/bin/python
$PY - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("GPUs:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PY
$PY scripts/gpu_smoke.py --steps "${STEPS:-200}"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
  tmp=$(mktemp -d)
  $PY -c "from object2vec.data.synthetic import make_pairs, write_jsonl; write_jsonl(make_pairs(20000, seed=1), '$tmp/train.jsonl'); write_jsonl(make_pairs(2000, seed=2), '$tmp/val.jsonl')"
  .venv/bin/object2vec train --nproc "$GPUS" --device cuda --train "$tmp/train.jsonl" --validation "$tmp/val.jsonl" \
    -p enc0_max_seq_len=10 -p enc0_vocab_size=200 -p enc0_network=pooled_embedding -p enc_dim=64 -p epochs=3 \
    -p token_embedding_storage_type=row_sparse -o "$tmp/model" -q
  .venv/bin/object2vec evaluate "$tmp/model" "$tmp/val.jsonl"
fi
