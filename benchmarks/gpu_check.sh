#!/usr/bin/env bash
# The GPU paths in one command, for a machine with a CUDA device: prints one JSON object per check on stdout.
#
#   bash benchmarks/gpu_check.sh            (PYTHON=python3, GPU_CHECK_DIR=/tmp/x, STEPS=300, PRESET=small, STEPS_TOKENIZER=30 to change)
#
# 1. train_gpu:  single-GPU `mmtok train` (bf16 autocast, fused AdamW, --compile) on generated text shards;
#                tokens/s and MFU are the medians of the run log's second half.
# 2. torchrun:   `torchrun --nproc-per-node 1 -m mmtok.cli train` (a one-rank NCCL process group: the loss
#                sums and weight totals are all-reduced on the GPU).
# 3. sample:     KV-cache sampling of the trained run on CUDA.
# 4. vq:         the VQ nearest-code search and training step on CUDA, also with batches that repeat one
#                vector (restarts; benchmarks/vq.py --device cuda --repeat-shares 0 0.3).
# 5. media:      the shipped image and audio tokenizers on CUDA against the CPU: codes, decodes, batch and
#                streamed decodes (benchmarks/gpu_media.py --device cuda).
# 6. trainers:   `mmtok train-tokenizer image|audio|vocoder --device cuda` for STEPS_TOKENIZER steps (30) on the
#                example media, the image run resumed, the trained image and audio models loaded on CUDA against
#                the CPU (benchmarks/gpu_trainers.py --device cuda).
# 7. demo_cuda:  `mmtok demo --fast --device cuda --json`: every step of the demo on the GPU, its page written.
# Every check's "ok" comes from what it measured or wrote (benchmarks/gpu_verdict.py reads the shards, the runs'
# log.jsonl, the sample, vq and media output: vq is ok only when mmtok's own VQ rows are there, whether or not the
# peer ran); the first check that is not ok ends the script with exit status 1, before its "done" line. A step
# that printed no JSON line (its log empty) is such a check: its JSON line ends with the log's last lines.
# Without a CUDA device it stops at once with one line on stderr and exit status 1, and so it does, saying
# which, when PYTHON does not run or cannot import torch.
set -euo pipefail

PY=${PYTHON:-python}
STEPS=${STEPS:-300}
PRESET=${PRESET:-small}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# 0: a CUDA device; 1: none; anything else: $PY does not run, or cannot import torch (its last line says why)
CUDA=0
WHY=$("$PY" -c 'import sys
try:
    import torch
except Exception as e:
    print(f"cannot import torch ({type(e).__name__}: {e})", file=sys.stderr)
    sys.exit(3)
sys.exit(0 if torch.cuda.is_available() else 1)' 2>&1) || CUDA=$?
if [ "$CUDA" = 1 ]; then
    echo "gpu_check: error: no CUDA device (torch.cuda.is_available() is False); run this on a machine with a GPU" >&2
    exit 1
elif [ "$CUDA" != 0 ]; then
    echo "gpu_check: error: PYTHON=$PY: ${WHY##*$'\n'}; set PYTHON to a python with mmtok and torch installed" >&2
    exit 1
fi

DIR=${GPU_CHECK_DIR:-$(mktemp -d)}
mkdir -p "$DIR"
DOCS=6000  # documents of generated text the checks train and sample on
PROMPT="the first "
NEW_TOKENS=300
VQ_KS=(1024 8192)  # codebook sizes and repeated shares of the vq check: vq.py and its verdict get the same
VQ_SHARES=(0 0.3)
VERDICT=("$PY" "$ROOT/benchmarks/gpu_verdict.py")

# run NAME CMD...: the command's output goes to DIR/NAME.log; on failure, its tail and a JSON line, then exit 1
run() {
    local name=$1
    shift
    if ! "$@" >"$DIR/$name.log" 2>&1; then
        tail -n 30 "$DIR/$name.log" >&2
        echo "{\"check\": \"$name\", \"ok\": false, \"log\": \"$DIR/$name.log\"}"
        exit 1
    fi
}

# a few MB of varied text: shards for every check below
"$PY" - "$DIR/docs.jsonl" "$DOCS" <<'EOF'
import json, random, sys
rng = random.Random(0)
words = [w for w in "the a of to and in is it that was for on are with as at be by this had not but from or have "
         "an they which one you were all her she there would their we him been has when who will more no if out "
         "so said what up its about into than them can only other new some could time these two may then do "
         "first any my now such like our over man me even most made after also did many before must through".split()]
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(50, 400))) + "."
        f.write(json.dumps({"segments": [{"text": text}]}) + "\n")
EOF
run tokenize "$PY" -m mmtok.cli tokenize "$DIR/docs.jsonl" --out "$DIR/shards" --quiet
"${VERDICT[@]}" shards "$DIR/shards/manifest.json" --docs "$DOCS"

# 1. one GPU: bf16 autocast, fused AdamW, torch.compile
START=$(date +%s)
run train_gpu "$PY" -m mmtok.cli train --data "$DIR/shards" --out "$DIR/run" --overwrite --preset "$PRESET" \
    --seq-len 512 --batch-size 16 --steps "$STEPS" --warmup 30 --save-every "$STEPS" --compile --device cuda
"${VERDICT[@]}" train "$DIR/run" --name train_gpu --log "$DIR/train_gpu.log" --loss-falls --start "$START" \
    --settings bf16_autocast fused_adamw compile

# 2. one NCCL rank under torchrun: every all-reduced tensor must live on the GPU
run torchrun "$PY" -m torch.distributed.run --nproc-per-node 1 --master-port 29561 -m mmtok.cli train \
    --data "$DIR/shards" --out "$DIR/run-ddp" --overwrite --preset tiny --seq-len 256 --batch-size 8 --steps 40 \
    --warmup 5 --save-every 20 --device cuda
"${VERDICT[@]}" train "$DIR/run-ddp" --name torchrun_nccl_1_rank --log "$DIR/torchrun.log" --steps 40 \
    --checkpoint ckpt-0000040

# 3. KV-cache sampling on CUDA
START=$(date +%s.%N)
run sample "$PY" -m mmtok.cli sample --run "$DIR/run" --prompt "$PROMPT" --max-new-tokens "$NEW_TOKENS" --seed 0 \
    --device cuda
"${VERDICT[@]}" sample "$DIR/sample.log" --prompt "$PROMPT" --max-new-tokens "$NEW_TOKENS" --start "$START"

# 4. the VQ search and training step on CUDA
run vq "$PY" "$ROOT/benchmarks/vq.py" --device cuda --n 262144 --ks "${VQ_KS[@]}" --repeats 3 --train-steps 100 \
    --repeat-shares "${VQ_SHARES[@]}"
"${VERDICT[@]}" vq "$DIR/vq.log" --device cuda --ks "${VQ_KS[@]}" --shares "${VQ_SHARES[@]}"

# 5. the shipped image and audio tokenizers on CUDA against the CPU (batch and streamed decodes too)
run media "$PY" "$ROOT/benchmarks/gpu_media.py" --device cuda
"${VERDICT[@]}" media "$DIR/media.log"

# 6. the tokenizer trainers on CUDA, a resume, and their models on CUDA against the CPU
run trainers "$PY" "$ROOT/benchmarks/gpu_trainers.py" --device cuda --dir "$DIR/trainers" \
    --steps "${STEPS_TOKENIZER:-30}"
"${VERDICT[@]}" trainers "$DIR/trainers.log"

# 7. the demo, every step on the GPU (its summary line on stdout, its progress on stderr: both in the log)
run demo "$PY" -m mmtok.cli demo --fast --device cuda --out "$DIR/demo" --json --no-progress
"${VERDICT[@]}" demo "$DIR/demo.log" --device cuda

echo "{\"check\": \"done\", \"ok\": true, \"dir\": \"$DIR\"}"
