#!/usr/bin/env bash
# bench/gpu.sh: the embedding service on an NVIDIA GPU, measured, and the figures appended to bench/RESULTS.md.
#
#   bash bench/gpu.sh            # from the repository root, with the venv of scripts/test
#
# 1. fp16 parity: the service on the GPU in fp16 against the same service in fp32 (seeded ViT-B-32
#    checkpoint, real photos and texts): max abs difference and min cosine of the vectors.
# 2. Throughput and latency: `python -m bench embedding --device cuda` at batch 32, 64, 128 and 256
#    (reference in PyTorch, the service with EMBEDDING_RUNTIME=torch, and with EMBEDDING_RUNTIME=onnx
#    when onnxruntime has its CUDA provider, i.e. onnxruntime-gpu is installed): images/s, text p50.
# Without a GPU it says so and exits 0 at once. A few minutes in all on a data-centre GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
RESULTS=${RESULTS:-bench/RESULTS.md}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "bench/gpu.sh: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing measured, $RESULTS unchanged"
  exit 0
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "bench/gpu.sh: nvidia-smi sees a GPU but torch cannot use it (a CPU-only torch wheel?): fix the venv" >&2
  exit 1
fi
GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
ORT_CUDA=$("$PY" -c 'from embedding.onnx_runtime import has_cuda_provider; print(has_cuda_provider())')
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "bench/gpu.sh: $GPU; onnxruntime CUDA provider: $ORT_CUDA"

"$PY" - "$OUT/parity.json" <<'PYTHON'
"""fp16 against fp32 through the real service on the GPU, same seeded checkpoint."""
import io, json, sys, tempfile
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from skimage import data as photos

from dyimages_common.embeddings.client import EmbeddingClient
from testkit.embedding import run_embedding_service
from testkit.storage import store

root = Path(tempfile.mkdtemp(prefix="gpu-parity-"))
images = root / "images"
images.mkdir()
torch.manual_seed(0)
torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), root / "seeded.pt")
paths = []
for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field"):
    buffer = io.BytesIO()
    Image.fromarray(getattr(photos, name)()).convert("RGB").save(buffer, format="JPEG", quality=92)
    paths.append(store(images, buffer.getvalue(), "jpg"))
texts = ["a photo of an astronaut", "a cat on a chair", "a cup of coffee", "a rocket at night", "x " * 100]
vectors = {}
for precision in ("fp32", "fp16"):
    env = {"MODEL_NAME": "ViT-B-32", "MODEL_PRETRAINED": str(root / "seeded.pt"), "DEVICE": "cuda",
           "EMBEDDING_PRECISION": precision, "EMBEDDING_RUNTIME": "torch", "LOG_LEVEL": "WARNING"}
    with run_embedding_service(images, root, **env) as service, EmbeddingClient(service.url, timeout=600) as client:
        assert client.info().device == "cuda", client.info()
        result = client.embed_image_paths(paths)
        vectors[precision] = (np.stack(result.vectors), client.embed_texts(texts))
(i32, t32), (i16, t16) = vectors["fp32"], vectors["fp16"]
figures = {
    "fp16_vs_fp32_image_max_abs_diff": float(np.abs(i16 - i32).max()),
    "fp16_vs_fp32_text_max_abs_diff": float(np.abs(t16 - t32).max()),
    "fp16_vs_fp32_image_min_cosine": float((i16 * i32).sum(axis=1).min()),
    "fp16_vs_fp32_text_min_cosine": float((t16 * t32).sum(axis=1).min()),
}
print(json.dumps(figures))
Path(sys.argv[1]).write_text(json.dumps(figures))
PYTHON

for batch in 32 64 128 256; do
  restart=()
  [ "$batch" = 32 ] || restart=(--skip-restart)  # restart and idle figures once, at the first batch size
  "$PY" -m bench embedding --device cuda --batch "$batch" --images $((batch * 4)) --rounds 2 --queries 30 \
    --idle-s 10 "${restart[@]}" | tee "$OUT/batch-$batch.log"
  tail -1 "$OUT/batch-$batch.log" > "$OUT/batch-$batch.json"
done

{
  echo
  echo "## embedding on a GPU (\`bash bench/gpu.sh\`), $(date -u +%Y-%m-%d) — $GPU"
  echo
  echo "onnxruntime CUDA provider installed: $ORT_CUDA. fp16 against fp32, through the service:"
  echo
  echo '```json'
  cat "$OUT/parity.json"; echo
  echo '```'
  echo
  echo "\`python -m bench embedding --device cuda\` at batch 32, 64, 128, 256 (last JSON line of each):"
  echo
  echo '```json'
  for batch in 32 64 128 256; do cat "$OUT/batch-$batch.json"; done
  echo '```'
} >> "$RESULTS"
echo "bench/gpu.sh: figures appended to $RESULTS"
