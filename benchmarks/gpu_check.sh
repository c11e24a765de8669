#!/usr/bin/env bash
# GPU check (issue 7): a short SCoRe run of a random Qwen2.5-0.5B-sized model through the real Trainer,
# with the transformers rollouts and, where vllm imports, the vLLM backend; no network needed.
# Prints step time, rollout tokens/s and peak GPU memory; writes $OUT/gpu_check.json (else
# benchmarks/gpu_check.json). Extra arguments go to gpu_check.py (--help). PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
# the script budgets itself to 270 s; the timeout is a backstop that keeps the whole check under 5.5 min
exec timeout 330 env PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
