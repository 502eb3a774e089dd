#!/usr/bin/env bash
# The GPU check: one prepared run on a machine with a CUDA GPU, in the repository root.
#   1. tests/test_gpu.py (the GPU paths CI cannot run: Pillow-exact resize on the device, features
#      equal to the CPU's, nvjpeg, a real CUDA out-of-memory fallback, resume, torch.compile, probe);
#   2. benchmarks/embed_throughput.py on the GPU: ViT-B-16 and ViT-L-14 over CIFAR-shaped images in
#      memory (overspec vs the CLIP_benchmark-style loop, and the forward-only ceiling), then
#      ViT-B-16 over PNG files decoded in workers;
#   3. benchmarks/linear_probe.py at the CIFAR-100 shape on the GPU (overspec alone);
#   4. benchmarks/finetune_throughput.py: the paper config's six fine-tunes (FR, MAD, PAD recipes on
#      ViT-B/16 and ViT-L/14, random weights, one GPU's share of each recipe) through the real loop and
#      data path against the forward+backward ceiling and the loop on on-device batches; then the FR
#      recipe at bf16. Its JSON (with command, device, versions) and readable log go to $RESULTS.
# Each step's log goes to $OUT (default /tmp/gpu_check) and a step that fails does not stop the next.
# Packages the machine lacks can travel as wheels in .whl/ (installed into /tmp/site).
#   bash benchmarks/gpu_check.sh                  # ~12 minutes on one H100/H200
#   ONLY='finetune' bash benchmarks/gpu_check.sh  # the steps whose names match a regex (tests, embed, linear_probe, finetune)
#   RESULTS=$OUT/results ...                      # where the device tool brings files back; commit them to benchmarks/results/
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
RESULTS=${RESULTS:-benchmarks/results}
ONLY=${ONLY:-.}
mkdir -p "$OUT" "$RESULTS"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision, open_clip, PIL, os; print('torch', torch.__version__, 'torchvision', \
torchvision.__version__, 'open_clip', open_clip.__version__, 'Pillow', PIL.__version__, 'cpus', os.cpu_count())" \
  | tee -a "$OUT/gpu.txt"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep the log, show its end
  local name=$1 limit=$2
  shift 2
  [[ $name =~ $ONLY ]] || return 0
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "   exit $? after $SECONDS s in all"
  tail -n "${TAIL:-6}" "$OUT/$name.log"
}

TAIL=15 step tests 200 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
step embed_vit_b16 120 python3 benchmarks/embed_throughput.py --device cuda --arch ViT-B-16 --n-images 50000 \
  --batch-size 512 --slices 2 --gpu-ceiling --ceiling-seconds 10 --memory-sizes ''
step embed_vit_l14 150 python3 benchmarks/embed_throughput.py --device cuda --arch ViT-L-14 --n-images 20000 \
  --batch-size 256 --slices 2 --gpu-ceiling --ceiling-seconds 10 --memory-sizes ''
step embed_vit_b16_png 120 python3 benchmarks/embed_throughput.py --device cuda --arch ViT-B-16 --n-images 10000 \
  --image-size 64 --source files --batch-size 512 --slices 2 --memory-sizes ''
step linear_probe 90 python3 benchmarks/linear_probe.py --device cuda --skip-sklearn
# One GPU's share of each recipe: global batch / the recipe's gpu count, workers = its threads per GPU - 1.
FT="python3 benchmarks/finetune_throughput.py --device cuda --warmup 3 --steps 12"
step finetune_vit_b16 240 $FT --models clip-vit-b16-fr clip-vit-b16-mad clip-vit-b16-pad \
  --save "$RESULTS/finetune_throughput_vit_b16.json"
step finetune_vit_l14 300 $FT --models clip-vit-l14-fr clip-vit-l14-mad clip-vit-l14-pad \
  --save "$RESULTS/finetune_throughput_vit_l14.json"
step finetune_fr_bf16 240 $FT --models clip-vit-b16-fr clip-vit-l14-fr --precision bf16 \
  --save "$RESULTS/finetune_throughput_fr_bf16.json"
for name in finetune_vit_b16 finetune_vit_l14 finetune_fr_bf16; do  # the readable lines beside each JSON
  if [[ -e $OUT/$name.log ]]; then cp "$OUT/$name.log" "$RESULTS/${name/finetune/finetune_throughput}.log"; fi
done
