#!/usr/bin/env bash
# GPU check of issue 3: the default toy ablation (`score ablate --seeds 3`, all twelve methods) on a GPU.
# Every method's training and evaluation goes through CUDA (the toy world in fp32, as on the CPU). The
# base model is passed as the first argument: toy bases build on the CPU, and passing the one the CPU
# tables used runs the GPU's ablation on the very same model.
#
#   bash benchmarks/gpu_toy_ablation.sh <toy base folder> [extra score ablate arguments]
#
# 1. smoke: every method, one seed, 2 optimiser steps, 8 test problems (fails fast on a CUDA bug), then
#    the evaluation-only paths (score eval, --reevaluate) on the same base and runs (SMOKE=0 skips both);
# 2. the ablation itself, cut so that the whole script ends within TOTAL seconds (default 540): what
#    finished is kept, and the findings check reads the finished runs (`score findings <folder>`).
# Writes into $OUT (else /tmp/gpu_toy_ablation): smoke.json, eval.json, ablation.json, ablation.md,
# findings.txt, runs.tgz (each run's config, metrics, evaluations and logs; no checkpoints or traces) and
# log.txt. WORKERS runs at a time (default 6: a toy run keeps a GPU nearly idle, its time is Python and
# kernel launches, so runs share it well), each with cores // WORKERS CPU threads.
set -uo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: gpu_toy_ablation.sh <toy base folder> [score ablate arguments]}; shift
out=${OUT:-/tmp/gpu_toy_ablation}; mkdir -p "$out"
work=$(mktemp -d)
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_MININTERVAL=20
score=("${PYTHON:-python3}" -m score_lib.cli)
t0=$(date +%s)
left() { echo $(( t0 + ${TOTAL:-540} - $(date +%s) - 25 )); }  # seconds left for the ablation, 25 kept for the rest
{
  "${score[0]}" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  start=$(date +%s)
  [ "${SMOKE:-1}" = 1 ] || skip=1
  tiny=(--set model="$base" --set steps=2 --set stage1_steps=1 --set eval_problems=8 --set eval_samples=1)
  [ -n "${skip:-}" ] || timeout 150 "${score[@]}" ablate --seeds 1 --workers "${WORKERS:-6}" "${tiny[@]}" --out "$work/smoke" --json "$out/smoke.json" "$@"
  echo "smoke: exit $? after $(( $(date +%s) - start )) s"
  start=$(date +%s)  # the evaluation-only paths: score eval and --reevaluate (greedy) of the smoke's runs
  [ -n "${skip:-}" ] || timeout 60 "${score[@]}" eval --model "$base" --set toy_kind=pick --limit 64 --json "$out/eval.json"
  echo "eval: exit $?"
  [ -n "${skip:-}" ] || timeout 90 "${score[@]}" ablate --seeds 1 "${tiny[@]}" --out "$work/smoke" --reevaluate eval_greedy=true "$@"
  echo "eval and reevaluate: exit $? after $(( $(date +%s) - start )) s"
  start=$(date +%s)
  timeout "$(left)" "${score[@]}" ablate --seeds "${SEEDS:-3}" --workers "${WORKERS:-6}" --set model="$base" \
    --out "$work/ablation" --json "$out/ablation.json" --md "$out/ablation.md" "$@"
  echo "ablation: exit $? after $(( $(date +%s) - start )) s"
  "${score[@]}" findings "$work/ablation" > "$out/findings.txt" 2>&1
  echo "findings: exit $?"
  tar czf "$out/runs.tgz" --exclude=checkpoints --exclude=traces.jsonl --exclude='*.safetensors' -C "$work" ablation smoke
} 2>&1 | tee "$out/log.txt"
