#!/usr/bin/env bash
# GPU smoke check (about 4 minutes on one GPU): install, print training throughput of the pooled,
# hcnn and bilstm benchmark configurations in fp32 and bf16, with two or more GPUs train once under
# torchrun (DDP over NCCL), then run the SageMaker container contract on the GPU: `train --sagemaker`
# (one process per GPU), `serve --sagemaker` (device auto = CUDA) and the error for a device the
# machine lacks. SKIP_BENCH=1 skips the throughput table.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || make .venv/.installed >/dev/null
PY=.venv/bin/python
$PY - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("GPUs:", [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
PY
[ -n "${SKIP_BENCH:-}" ] || $PY scripts/gpu_smoke.py --steps "${STEPS:-200}"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ]; then
  tmp=$(mktemp -d)
  $PY -c "from object2vec.data.synthetic import make_pairs, write_jsonl; write_jsonl(make_pairs(20000, seed=1), '$tmp/train.jsonl'); write_jsonl(make_pairs(2000, seed=2), '$tmp/val.jsonl')"
  .venv/bin/object2vec train --nproc "$GPUS" --device cuda --train "$tmp/train.jsonl" --validation "$tmp/val.jsonl" \
    -p enc0_max_seq_len=10 -p enc0_vocab_size=200 -p enc0_network=pooled_embedding -p enc_dim=64 -p epochs=3 \
    -p token_embedding_storage_type=row_sparse -o "$tmp/model" -q
  .venv/bin/object2vec evaluate "$tmp/model" "$tmp/val.jsonl"
fi

# --- the SageMaker container contract on this GPU machine ---------------------------------------------
root=$(mktemp -d)
mkdir -p "$root/input/config" "$root/input/data/train" "$root/input/data/validation" "$root/model"
$PY - "$root" <<'PYDATA'
import json, sys
from object2vec.data.synthetic import make_pairs, write_jsonl
root = sys.argv[1]
write_jsonl(make_pairs(20000, seed=1), f"{root}/input/data/train/part-0.jsonl")
write_jsonl(make_pairs(2000, seed=2), f"{root}/input/data/validation/part-0.jsonl")
hp = {"enc0_max_seq_len": "10", "enc0_vocab_size": "200", "enc0_network": "pooled_embedding", "enc_dim": "64",
      "mlp_dim": "64", "epochs": "3", "mini_batch_size": "256", "_tuning_objective_metric": "validation:accuracy"}
json.dump(hp, open(f"{root}/input/config/hyperparameters.json", "w"))
PYDATA
echo "== train --sagemaker ($GPUS GPUs: expect one process per GPU when more than one)"
.venv/bin/object2vec train --sagemaker --sagemaker-root "$root" 2>&1 | grep -E "GPUs visible|global batch|Ignoring keys|validation accuracy|model written" || true
test -f "$root/model/model.safetensors" || { echo "FAIL: train --sagemaker wrote no model"; cat "$root/output/failure" 2>/dev/null; exit 1; }
echo "== serve --sagemaker (expect device cuda)"
port=$($PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
SAGEMAKER_BIND_TO_PORT=$port SAGEMAKER_MAX_PAYLOAD_IN_MB=20 .venv/bin/object2vec serve --sagemaker --sagemaker-root "$root" \
  > "$root/serve.log" 2>&1 &
server=$!
$PY - "$port" <<'PYSERVE'
import json, sys, time, urllib.request
port = sys.argv[1]
for _ in range(120):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1); break
    except OSError:
        time.sleep(0.5)
body = b'{"in0": [1, 2], "in1": [3]}\n{"in1": [3]}\n'
req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/jsonlines"})
print(urllib.request.urlopen(req, timeout=30).read().decode()[:200])
print(urllib.request.urlopen(f"http://127.0.0.1:{port}/execution-parameters", timeout=5).read().decode())
PYSERVE
kill "$server"; wait "$server" 2>/dev/null || true
grep -E "serving .* device cuda" "$root/serve.log" || { echo "FAIL: serve --sagemaker did not serve on CUDA"; cat "$root/serve.log"; exit 1; }
echo "== --device cuda:$GPUS (a GPU this machine lacks: expect one error line, exit status 2)"
if .venv/bin/object2vec evaluate "$root/model" "$root/input/data/validation/part-0.jsonl" --device "cuda:$GPUS"; then
  echo "FAIL: a missing GPU was accepted"; exit 1
fi
echo "GPU smoke check passed"
