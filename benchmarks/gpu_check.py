"""GPU check: a short SCoRe run (Stage I + Stage II) of a Qwen2.5-0.5B-sized Qwen2 with random weights.

Run from the repository root, no network needed:  PYTHONPATH=. python3 benchmarks/gpu_check.py
(or benchmarks/gpu_check.sh). `--tiny` runs a tiny Qwen2 on the CPU in seconds (the test does).

What it measures: the project's own engine, not a stand-in. The random model and the toy
character-level tokenizer are saved to a temporary folder, a real Trainer loads them from there
(load_policy, reference copy, accelerate, Adam) and `Trainer.rl_step` runs the toy world's steps:
rollout (both attempts, one KV cache), oracle, objective, REINFORCE + exact-KL loss, backward, Adam.
The tokenizer knows 99 of the model's 151,936 token ids: a random model samples ids it cannot
spell, so rewards are 0 and attempts run to the length cap, which is what a speed check wants (its
stop token comes about once in 151,936 tokens: a step decodes nearly max_new_tokens per attempt).
Then the same with the vLLM rollout backend (rollout_backend=vllm) when `import vllm` works.

Needs: torch (CUDA), transformers >= 5.0 (written against 5.17's API), accelerate, tqdm, numpy.
score_lib.metrics imports rapidfuzz; where it is missing a pure-Python Levenshtein stands in (it
only feeds the logged edit-distance metrics, not the measured work) and the output says so.

Writes $OUT/gpu_check.json when OUT is set, else benchmarks/gpu_check.json. Each phase catches
its own errors (reported in the JSON and printed); a CUDA out-of-memory retries once at half batch.
Budget: every phase stops taking steps when the next one would pass --budget-s (default 270 s in all).
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the hub; never wait on a network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

T_START = time.perf_counter()

# Qwen2.5-0.5B's shape (its config.json), built here with random weights
QWEN05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
               intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6,
               max_position_embeddings=32768, rms_norm_eps=1e-6)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=1024, tie_word_embeddings=True, rope_theta=1e6,
            max_position_embeddings=512, rms_norm_eps=1e-6)


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T_START:6.1f}s] {msg}", flush=True)


def ensure_rapidfuzz() -> str:
    """'rapidfuzz' or 'fallback': put a pure-Python Levenshtein where rapidfuzz is not installed."""
    if importlib.util.find_spec("rapidfuzz") is not None:
        return "rapidfuzz"
    import types

    def distance(a, b) -> int:
        prev = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            cur = [i]
            for j, cb in enumerate(b, 1):
                cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
            prev = cur
        return prev[-1]

    pkg, dist = types.ModuleType("rapidfuzz"), types.ModuleType("rapidfuzz.distance")
    dist.Levenshtein = types.SimpleNamespace(distance=distance)
    pkg.distance = dist
    sys.modules.update({"rapidfuzz": pkg, "rapidfuzz.distance": dist})
    log("rapidfuzz not installed: a pure-Python Levenshtein stands in (logged metrics only)")
    return "fallback"


def build_model_folder(folder: Path, shape: dict, dtype: torch.dtype, device: str) -> int:
    """Save a randomly initialised Qwen2ForCausalLM and the toy tokenizer to `folder`; its parameter count."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from score_lib.policy import toy_tokenizer

    tok = toy_tokenizer()
    config = Qwen2Config(**shape, bos_token_id=None, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: 0.5B parameters take seconds on a CPU
        model = Qwen2ForCausalLM(config).to(dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    del model
    return n_params


def run_phase(backend: str, folder: Path, args, deadline: float) -> dict:
    """Build a Trainer on the saved model and time `steps` rl_steps; the phase's result record."""
    from score_lib.config import build_config
    from score_lib.trainer import Trainer

    cuda = torch.cuda.is_available()
    cfg = build_config("toy-score", {
        "model": str(folder), "dtype": "bfloat16" if cuda else "float32", "steps": args.steps,
        "stage1_steps": args.steps // 2, "batch_prompts": args.batch_prompts,
        "samples_per_prompt": args.samples, "max_new_tokens": args.max_new_tokens, "eval_every": 0,
        "checkpoint_every": 0, "trace_every": 0, "eval_problems": 8, "eval_samples": 1,
        **({"rollout_backend": backend} if backend != "hf" else {})})
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run", progress=False)
        setup_s = time.perf_counter() - t0
        mem_setup = torch.cuda.memory_allocated() / 2**30 if cuda else None
        log(f"{backend}: trainer ready in {setup_s:.1f} s; {args.steps} steps of {args.batch_prompts} prompts "
            f"x {args.samples} samples x 2 attempts, {args.max_new_tokens} new tokens per attempt")
        train, steps, last = trainer.task.problems("train"), [], 0.0
        for step in range(args.steps):
            if steps and time.perf_counter() + 1.5 * last > deadline:
                log(f"{backend}: stopping after {len(steps)} steps to stay inside the time budget")
                break
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            rec = trainer.rl_step(step, train)
            if cuda:
                torch.cuda.synchronize()  # Adam's kernels are asynchronous: wait for them before timing
            last = time.perf_counter() - t
            n_ep = args.batch_prompts * args.samples
            tokens = round(n_ep * (rec["len_t1"] + rec["len_t2"]))
            steps.append({"step": step + 1, "stage": rec["stage"], "step_s": last, "generate_s": rec["t_generate"],
                          "score_s": rec["t_score"], "update_s": last - rec["t_generate"] - rec["t_score"],
                          "generated_tokens": tokens})
            log(f"{backend}: step {step + 1} ({rec['stage']}) {last:.2f} s: generate {rec['t_generate']:.2f} s, "
                f"update {steps[-1]['update_s']:.2f} s, {tokens} tokens, loss {rec['loss']:.3f}")
        del trainer
    kept = steps[1:] if len(steps) > 1 else steps  # the first step pays for kernel selection and warm-up
    med = lambda key: statistics.median(s[key] for s in kept)  # noqa: E731
    tokens = statistics.median(s["generated_tokens"] for s in kept)
    out = {"backend": backend, "batch": f"{args.batch_prompts} prompts x {args.samples} samples x 2 attempts",
           "max_new_tokens": args.max_new_tokens, "steps_run": len(steps), "steps_kept": len(kept),
           "setup_s": round(setup_s, 2), "step_s_median": round(med("step_s"), 4),
           "generate_s_median": round(med("generate_s"), 4), "update_s_median": round(med("update_s"), 4),
           "score_s_median": round(med("score_s"), 5), "generated_tokens_per_step": tokens,
           "rollout_tokens_per_s": round(tokens / med("generate_s"), 1),
           "step_tokens_per_s": round(tokens / med("step_s"), 1),
           "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None,
           "gpu_memory_after_setup_gib": round(mem_setup, 3) if cuda else None,
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
           "first_step_s": round(steps[0]["step_s"], 3), "per_step": steps}
    return out


def guarded_phase(backend: str, folder: Path, args, deadline: float) -> dict:
    """run_phase, with errors reported instead of raised; one retry at half batch after a CUDA OOM."""
    for attempt in range(2):
        try:
            return run_phase(backend, folder, args, deadline)
        except torch.cuda.OutOfMemoryError as e:
            gc.collect()
            torch.cuda.empty_cache()
            if attempt == 0 and args.batch_prompts > 1:
                log(f"{backend}: out of GPU memory ({str(e).splitlines()[0][:120]}); retrying at half batch")
                args = argparse.Namespace(**{**vars(args), "batch_prompts": args.batch_prompts // 2})
                continue
            return {"backend": backend, "error": f"OutOfMemoryError: {str(e)[:500]}"}
        except Exception as e:  # report and go on to the next phase
            log(f"{backend}: FAILED {type(e).__name__}: {e}")
            return {"backend": backend, "error": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc()[-3000:]}
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return {"backend": backend, "error": "unreachable"}


def summary_line(r: dict) -> str:
    if "error" in r or "skipped" in r:
        return f"{r['backend']}: {r.get('error') or r.get('skipped')}"
    mem = f"{r['peak_gpu_memory_gib']} GiB" if r["peak_gpu_memory_gib"] is not None else f"RSS {r['peak_rss_gib']} GiB"
    return (f"{r['backend']}: step {r['step_s_median']} s (generate {r['generate_s_median']} s, update "
            f"{r['update_s_median']} s), rollout {r['rollout_tokens_per_s']} tok/s, whole step "
            f"{r['step_tokens_per_s']} tok/s, peak memory {mem}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny Qwen2 on the CPU (a seconds-long smoke test)")
    ap.add_argument("--steps", type=int, default=None, help="steps per backend, half Stage I (default 6; tiny 4)")
    ap.add_argument("--batch-prompts", type=int, default=None, help="prompts per step (default 8; tiny 2)")
    ap.add_argument("--samples", type=int, default=None, help="samples per prompt (default 4; tiny 2)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="per attempt (default 64; tiny 8)")
    ap.add_argument("--budget-s", type=float, default=270.0, help="wall-clock budget of the whole check")
    ap.add_argument("--backends", default="hf,vllm", help="comma-separated: hf, vllm")
    ap.add_argument("--out", default=None, help="JSON path (default $OUT/gpu_check.json or benchmarks/gpu_check.json)")
    args = ap.parse_args(argv)
    tiny = args.tiny
    args.steps = args.steps or (4 if tiny else 6)
    # 8 x 4 by default: the exact full-vocabulary KL holds about 30 bytes per (token x 151,936 vocabulary)
    # entry through the backward pass, so 64 episodes of ~180 tokens would need ~60 GB on top of the model
    args.batch_prompts = args.batch_prompts or (2 if tiny else 8)
    args.samples = args.samples or (2 if tiny else 4)
    args.max_new_tokens = args.max_new_tokens or (8 if tiny else 64)
    if args.steps < 2:
        ap.error("--steps must be at least 2 (one Stage I and one Stage II step)")
    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        ap.error("no CUDA device: the full-size check needs a GPU; use --tiny on a CPU")
    out_path = Path(args.out) if args.out else (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT")
                                                else ROOT / "benchmarks" / "gpu_check.json")
    import transformers

    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": torch.cuda.get_device_name(0) if cuda else "cpu",
           "torch": torch.__version__, "transformers": transformers.__version__, "cuda": torch.version.cuda,
           "model": {"arch": "Qwen2ForCausalLM (random weights)", "shape": "tiny" if tiny else "Qwen2.5-0.5B",
                     **(TINY if tiny else QWEN05B)},
           "command": " ".join(["python3", "benchmarks/gpu_check.py", *(argv if argv is not None else sys.argv[1:])])}
    log(f"device {res['device']}, torch {res['torch']}, transformers {res['transformers']}")
    res["rapidfuzz"] = ensure_rapidfuzz()
    deadline = T_START + args.budget_s
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qwen2-random"
        try:
            t = time.perf_counter()
            res["model"]["parameters"] = build_model_folder(folder, TINY if tiny else QWEN05B,
                                                            torch.bfloat16 if cuda else torch.float32,
                                                            "cuda" if cuda else "cpu")
            log(f"built and saved a random Qwen2 ({res['model']['parameters'] / 1e6:.1f}M parameters) "
                f"in {time.perf_counter() - t:.1f} s")
        except Exception as e:
            res["error"] = f"building the model: {type(e).__name__}: {e}"
            log(res["error"])
            return write(res, out_path)
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        for backend in backends:
            if backend == "vllm" and importlib.util.find_spec("vllm") is None:
                print("vllm not installed: skipped", flush=True)
                res[backend] = {"backend": backend, "skipped": "vllm not installed"}
                continue
            if backend == "vllm" and not cuda:
                res[backend] = {"backend": backend, "skipped": "vllm needs a CUDA device"}
                continue
            res[backend] = guarded_phase(backend, folder, args, deadline)
    res["total_s"] = round(time.perf_counter() - T_START, 1)
    print("\n## gpu_check")
    print(f"{res['device']}, {res['model']['shape']} ({res['model'].get('parameters', 0) / 1e6:.1f}M parameters)")
    for b in backends:
        print(summary_line(res[b]))
    if "step_s_median" in res.get("hf", {}) and "step_s_median" in res.get("vllm", {}):
        print(f"vllm / hf rollout tokens/s: {res['vllm']['rollout_tokens_per_s'] / res['hf']['rollout_tokens_per_s']:.2f}")
    return write(res, out_path)


def write(res: dict, path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=2) + "\n")
    log(f"wrote {path}")
    return res


if __name__ == "__main__":
    main()
