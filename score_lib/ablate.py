"""`score ablate`: every method of the paper's Tables 1, 2 and 4 on one world, several seeds.

Each method is a config, not a code path (DESIGN.md): the same steps, the same sampled responses
per step (job_settings) and the same evaluation for all of them. Runs are independent `score train`
processes, two at a time on two cores, each writing a normal run directory, so the app and the
notebooks can open any of them; ablation_table.py reads their final evaluations back as the table.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from multiprocessing.connection import wait
from pathlib import Path

# method key -> (label in tables, overrides on top of the world preset)
ABLATIONS: dict[str, tuple[str, dict]] = {
    "base": ("Base model", {"method": "eval", "steps": 0}),
    "self-refine": ("Self-Refine (prompting)", {"method": "self-refine", "steps": 0}),
    "star": ("STaR", {"method": "star"}),
    "star-plus": ("STaR+", {"method": "star-plus"}),
    "pair-sft": ("Pair-SFT", {"method": "pair-sft"}),
    "pair-sft-plus": ("Pair-SFT+", {"method": "pair-sft-plus"}),
    "st-rl": ("Single-turn RL", {"method": "st-rl", "attempts": 1}),
    "mt-rl": ("Multi-turn RL", {"method": "mt-rl"}),
    "no-stage1": ("SCoRe w/o Stage I", {"method": "stage2"}),
    "no-shaping": ("SCoRe w/o reward shaping", {"method": "score", "alpha": 0}),
    "star-stage2": ("SCoRe, STaR in Stage II", {"method": "score", "stage2": "star"}),
    "score": ("SCoRe", {"method": "score"}),
}

# world presets: settings shared by every method of an ablation. The budget is sized so that 12
# methods x 3 seeds finish within 30 minutes on 2 cores (two runs at a time, one thread each); each
# step writes 8 answers per problem for every method (4 two-attempt episodes; single-turn RL: 8 one-attempt);
# evaluation samples 4 answers per problem at temperature 1 (docs/toy_world.md says why).
# lr 2e-4 and beta2 1.0 are the toy world's shared defaults (RESULTS.md, issue 3 probes): at lr 1e-4 the
# 60 small steps barely move either attempt, and beta2 0.1 on 22-token attempts let attempt 1 drift by
# 0.1-0.3 nats during Stage I, which is not the strong pin Eq. 3 asks for. sft_lr 3e-4 (every SFT
# baseline's, and STaR's in Stage II): at 1e-4 the SFT+ baselines half-fit their own traces, Pair-SFT+
# collapsing with Delta -0.045 where the paper's ends at 0 (RESULTS.md, 2026-12-03 thirteenth session).
# baseline loo-state (every RL row's; the paper does not state its baseline): with 4 samples a problem and
# alpha 10, the plain leave-one-out baseline pushes a c->c second attempt down when a sibling sample fixed its
# answer (-3 among c->c, c->c, i->c, i->i), although the -alpha * r1 of Eq. 4 is attempt 1's doing. Over 8 seeds
# it raised SCoRe's Delta on the default world from +0.004 to +0.009; on the harder world 3 seeds could not
# tell the two apart (RESULTS.md, 2026-12-04).
# eval_problems 1024 (256 until 2026-12-05): the first 256 test problems of the pick world happen to be easier
# than the rest (the base's Acc@t1 0.684 there, 0.645 on 1024), and every Delta's sampling error halves. Evaluation
# takes about 20 s a run at 1024: the 3-seed table took 28 min 45 s instead of 21 min 5 s (RESULTS.md, 2026-12-05).
ABLATION_BUDGET = {"steps": 60, "stage1_steps": 20, "batch_prompts": 8, "samples_per_prompt": 4,
                   "lr": 2e-4, "sft_lr": 3e-4, "beta2": 1.0, "baseline": "loo-state", "eval_every": 0,
                   "checkpoint_every": 0, "eval_problems": 1024, "eval_samples": 4}
# The default world is the pick world (tasks.toy_pick): its check is easier than its solution, which is
# where the paper's findings appear (RESULTS.md, "A base between the two"); a checked second attempt that
# scans again runs to about 50 tokens with 5 numbers, 60 with 6. The chain world, whose base never
# learned to check, keeps its own presets.
WORLDS: dict[str, dict] = {
    "toy": {**ABLATION_BUDGET, "toy_kind": "pick", "max_new_tokens": 64},
    "toy-hard": {**ABLATION_BUDGET, "toy_kind": "pick", "toy_numbers": 6, "max_new_tokens": 64},
    "toy-chain": {**ABLATION_BUDGET},
    "toy-chain-hard": {**ABLATION_BUDGET, "toy_n_ops": 4},
}
# Before 2026-12-03 "toy" and "toy-hard" were the chain world's presets (now toy-chain, toy-chain-hard) and
# the pick world was "toy-pick", a name that now says where it went
RENAMED = {"toy-pick": "toy"}

PLAN_FILE = "ablation_plan.json"  # written into the ablation's folder when it starts
SHARED_SAMPLES = "samples"  # the ablation's folder for the SFT baselines' shared first rounds (shared_samples.py)
# runs whose first round another method of the same seed draws identically: they start later, to read it
READS_SAMPLES = ("star-plus", "pair-sft-plus")


def job_settings(world: str, key: str, seed: int, extra: list[str]) -> dict:
    """Every setting of one run: the world preset, the method's overrides, then the user's --set.

    The sample budget counts sampled responses: each problem of a step gets the same number of
    answers written by every method. A multi-turn episode holds `attempts` responses, so a method
    trained on fewer attempts per episode (single-turn RL) samples proportionally more episodes per
    problem; otherwise it would see half the samples of the others.
    """
    from .config import TrainConfig

    user = dict(e.split("=", 1) for e in extra)
    settings = {**WORLDS[world], **ABLATIONS[key][1], "seed": seed, **user}
    shared = {**WORLDS[world], **user}  # what every method of the ablation runs with
    shared_attempts = int(shared.get("attempts", TrainConfig.attempts))
    attempts = int(settings.get("attempts", TrainConfig.attempts))
    if attempts < shared_attempts:
        per_problem = int(shared.get("samples_per_prompt", TrainConfig.samples_per_prompt)) * shared_attempts
        settings["samples_per_prompt"] = per_problem // attempts
    return settings


def _job_args(world: str, key: str, seed: int, out: Path, extra: list[str], state: str = "new") -> list[str]:
    from .config import SFT_FAMILY

    run = out / f"{key}-s{seed}"
    train = ["train", "--quiet", "--json", str(out / f"{key}-s{seed}.json")]  # `score` arguments
    if state == "resume":  # an interrupted run continues from its last checkpoint (or its start)
        return train + ["--resume", str(run)]
    args = train + ["--preset", "toy-score", "--out", str(run)]
    for k, v in job_settings(world, key, seed, extra).items():
        args += ["--set", f"{k}={v}"]
    if ABLATIONS[key][1].get("method") in SFT_FAMILY:  # STaR+ and Pair-SFT+ first draw what STaR and Pair-SFT draw
        args += ["--set", f"shared_samples={out / SHARED_SAMPLES}"]
    if key == "score":  # its Stage I is also that of the seed's other score variants (stage1_source)
        args += ["--set", "keep_stage1=true"]
    elif source := stage1_source(world, key, seed, out, extra):
        args += ["--set", f"stage1_from={source}"]
    return args


def stage1_source(world: str, key: str, seed: int, out: Path, extra: list[str]) -> Path | None:
    """The run whose Stage I a SCoRe variant (w/o shaping, STaR in Stage II) takes instead of training it again:
    the same seed's SCoRe run, once it has kept its checkpoint at the end of Stage I; None before (the variant
    then trains Stage I itself, to the same numbers). Every setting Stage I uses is the ablation's, shared."""
    from .runs import checkpoint_dir

    if key == "score" or ABLATIONS[key][1].get("method") != "score":
        return None
    source = out / f"score-s{seed}"
    end = checkpoint_dir(source, int(job_settings(world, "score", seed, extra)["stage1_steps"]))
    return source if (end / "COMPLETE").is_file() else None


def job_state(world: str, key: str, seed: int, out: Path, extra: list[str]) -> str:
    """"new", "done" (finished, its --json written) or "resume" for one run of an ablation in `out`,
    so that rerunning an interrupted ablation redoes only what is missing. A folder that holds a run
    with other settings raises, naming the first that differs: one table never mixes two budgets."""
    from .config import BOOKKEEPING_SETTINGS, as_dict, build_config, differing_setting
    from .runs import read_config, read_status

    run = out / f"{key}-s{seed}"
    if not (run / "config.json").exists():
        return "new"
    settings = job_settings(world, key, seed, extra)
    want = json.loads(json.dumps(as_dict(build_config("toy-score", {k: str(v) for k, v in settings.items()}))))
    if differs := differing_setting(read_config(run), want, ignore=BOOKKEEPING_SETTINGS):
        name, value = differs
        raise ValueError(f"ablate: {run} holds a run with {name}={value!r}, but this ablation "
                         f"sets {name}={want[name]!r}; pass another --out")
    done = read_status(run).get("state") == "finished" and (out / f"{key}-s{seed}.json").exists()
    return "done" if done else "resume"


def check_models(out: Path, jobs: list[tuple[str, int]], model: str) -> None:
    """Refuse runs of `out` that started from another model than this ablation's (their model.json): a
    table that pooled them would compare methods trained from two bases. A toy base rebuilt under the same
    cache key counts as another where its weights differ (runs.weights_digest) or, for runs recorded before
    the weights were, where its build took other steps (runs.model_build). Runs written before runs recorded
    their model pass unchecked."""
    from .runs import model_key, read_model
    from .trainer import model_record

    now = model_record(model, model).get("toy_base", {})
    odd = []
    for m, s in jobs:
        recorded = read_model(out / f"{m}-s{s}")
        if recorded is None:
            continue
        built = recorded.get("toy_base", {})
        if model_key(recorded["path"]) != model_key(model):
            odd.append(f"{m}-s{s} ({recorded['path']})")
        elif built.get("weights") and now.get("weights"):  # the same cache key: the same weights?
            if built["weights"] != now["weights"]:  # rebuilt (another CPU), or a local build against the shipped
                odd.append(f"{m}-s{s} ({recorded['path']}, weights {built['weights']})")
        elif built.get("steps") and now.get("steps") and built["steps"] != now["steps"]:
            odd.append(f"{m}-s{s} ({recorded['path']}, {built['steps']} steps)")
    if odd:
        raise ValueError(f"ablate: this ablation's model is {model}" +
                         (f" ({now['steps']} steps, weights {now['weights']})" if now else "") +
                         f", but {len(odd)} run(s) in {out} started from another: {', '.join(odd)}; "
                         "remove them or pass another --out")


def missed_target(model: str) -> str | None:
    """What to tell the user when a toy base ran all its steps without reaching its target: its table need
    not show the findings (a harder-world build whose check never formed: RESULTS.md, 2026-12-06)."""
    from .toy_base import stop_summary

    built = Path(model) / "toy_base.json"
    meta = json.loads(built.read_text()) if built.exists() else {}
    if not meta.get("checks") or meta.get("reached_target") or meta.get("stopped_by") != "max_steps":
        return None
    last, gap = meta["checks"][-1], meta["config"].get("target_flag_gap")
    why = ("a base whose check does not work re-solves right and wrong first attempts alike, and the paper's "
           "findings need one that can tell them apart" if gap and (last.get("flag_wrong") or 0) -
           (last.get("flag_right") or 0) < gap else "its table need not show the paper's findings")
    return (f"the base {model} ran all its {meta['steps']} steps without reaching its target "
            f"({stop_summary(meta)}); {why} (docs/toy_world.md)")


# imported once by the process that starts the runs (multiprocessing's forkserver), so that each run, a
# fork of it, starts in well under a second instead of importing torch and transformers again (about 5 s
# here, 36 times a table); which modules a process has imported changes no number (tests/test_cli.py).
# Not score_lib.cli: under `python -m score_lib.cli ablate` each child imports it afresh as its main module,
# which runpy warns about when the module is there already.
PRELOAD = ["score_lib.trainer", "score_lib.sft", "transformers.models.llama.modeling_llama", "accelerate"]


def _run_child(args: list[str], log: str, threads: int) -> None:
    """One run of the ablation in its own process: `score <args>`, its output appended to `log` (a resumed
    run keeps the log of its first try), on `threads` torch threads."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # for what it starts
    import torch

    torch.set_num_threads(threads)
    from .cli import main

    sys.exit(main(args))


class Children:
    """The ablation's running training processes, so that a stop (Ctrl-C, or SIGTERM from kill or a job
    scheduler) reaches them: each ends as "stopped" and resumes with the same --out, and no queued run
    starts after it. Each run is a process of its own (a failing or crashing run takes nothing else down),
    forked from a server that has imported the library once, where the platform has one."""

    def __init__(self):
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        self.context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            self.context.set_forkserver_preload(PRELOAD)
        self.procs: set = set()
        self.lock = threading.Lock()
        self.stopping = False

    def run(self, args: list[str], log: Path, threads: int) -> int:
        """`score <args>` in a child process; its exit code (negative: the signal that ended it)."""
        with self.lock:
            if self.stopping:
                return -signal.SIGTERM
            proc = self.context.Process(target=_run_child, args=(args, str(log), threads))
            proc.start()
            self.procs.add(proc)
        try:
            wait([proc.sentinel])  # until it ends, reading nothing
            # A child's exit code is read once from its sentinel, and Process.start polls every other child:
            # read it under the lock start runs under, or a start in the other worker's thread can take it
            # first and this join then reads EOF, which multiprocessing reports as exit code 255.
            with self.lock:
                proc.join()
                return proc.exitcode
        finally:
            with self.lock:
                self.procs.discard(proc)

    def close(self) -> None:
        """Once no run is left: stop the forkserver and wait for it, so that it does not outlive the ablation
        and its runs' CPU time and memory count to this process (`/usr/bin/time -v score ablate`)."""
        from multiprocessing import forkserver

        if self.context.get_start_method() == "forkserver":
            getattr(forkserver._forkserver, "_stop", lambda: None)()  # CPython's own; absent elsewhere: no-op

    def stop(self) -> None:
        """Start no more runs; ask the running ones to stop (they write status "stopped") and wait for them."""
        with self.lock:
            self.stopping = True
            procs = list(self.procs)
        deadline = time.time() + 2  # a Ctrl-C in a terminal reached them too: let them stop on that one
        for proc in procs:
            if not wait([proc.sentinel], max(0.0, deadline - time.time())):
                proc.terminate()
        for proc in procs:  # their exit codes are left to run(), under the lock
            wait([proc.sentinel])


def ended_by(exitcode: int) -> str:
    """A child's nonzero exit code in words (multiprocessing reports a signal as its negative number)."""
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"signal {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"signal {-exitcode}"


def checked_request(world: str, methods: list[str] | None) -> list[str]:
    """The methods to run (default: all), after refusing an unknown world preset or method by name."""
    if world not in WORLDS:
        hint = f"; it is now called {RENAMED[world]!r}" if world in RENAMED else ""
        raise ValueError(f"ablate: unknown world preset {world!r} (one of {', '.join(WORLDS)}){hint}")
    methods = methods or list(ABLATIONS)
    bad = [m for m in methods if m not in ABLATIONS]
    if bad:
        raise ValueError(f"ablate: unknown method(s) {', '.join(bad)} (known: {', '.join(ABLATIONS)})")
    return methods


def jobs_to_run(states: dict[tuple[str, int], str]) -> list[tuple[str, int]]:
    """The (method, seed) runs not done yet, in the order they start. Training runs first, seed by seed, each
    seed's SCoRe run leading and the variants that take its Stage I (stage1_source) last, by when it is kept;
    STaR+ and Pair-SFT+ come after the other training runs of their seed, by when STaR's and Pair-SFT's
    first rounds are drawn (shared_samples); then the evaluation-only ones, the longer Self-Refine before
    the base, so that neither worker idles long at the end while the other finishes."""
    def order(job):
        method, seed = job
        if ABLATIONS[method][1].get("steps") == 0:
            return 1, method != "self-refine", seed, 0
        takes_stage1 = method != "score" and ABLATIONS[method][1].get("method") == "score"
        tier = 0 if method == "score" else 3 if takes_stage1 else 2 if method in READS_SAMPLES else 1
        return 0, seed, tier, list(ABLATIONS).index(method)

    return sorted((job for job, state in states.items() if state != "done"), key=order)


def seed_range(first_seed: int, seeds: int) -> list[int]:
    """The seeds of one invocation, first_seed .. first_seed + seeds - 1 (training or --reevaluate)."""
    if first_seed < 0:
        raise ValueError(f"ablate: --first-seed must be >= 0, got {first_seed}")
    return list(range(first_seed, first_seed + seeds))


def run_ablation(world: str = "toy", seeds: int = 3, out: Path | None = None, methods: list[str] | None = None,
                 extra: list[str] | None = None, workers: int | None = None, progress: bool = True,
                 first_seed: int = 0) -> dict:
    """Train and evaluate every method for seeds first_seed .. first_seed + seeds - 1 (a later batch of
    seeds for an earlier recording: `score findings --pool` checks both as one); returns the results."""
    from tqdm import tqdm

    from .ablation_table import aggregate, eval_protocol
    from .config import build_config
    from .runs import atomic_write_json, model_build, weights_digest
    from .toy_base import ClockStopped
    from .trainer import _resolve_model, model_record

    methods = checked_request(world, methods)
    seed_list = seed_range(first_seed, seeds)  # a bad first seed is refused before the base build (minutes)
    extra = extra or []
    out = Path(out or f"runs/ablate-{world}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    # build the shared base model once, before parallel jobs could race to build it
    base_cfg = build_config(None, {**{k: str(v) for k, v in WORLDS[world].items()},
                                   **dict(e.split("=", 1) for e in extra)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _resolve_model(base_cfg)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    said = any(issubclass(w.category, ClockStopped) for w in caught)  # a base built just now warned for itself
    if not said and model_record(base_cfg.model, model).get("toy_base", {}).get("stopped_by") == "max_seconds":
        print(f"ablate: warning: the base {model} was stopped by its wall-clock cap, not by its recipe "
              "(toy_base.json: stopped_by); its table may differ from one on a base built on an idle machine",
              file=sys.stderr)
    if missed := missed_target(model):
        print(f"ablate: warning: {missed}", file=sys.stderr)
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    states = {(m, s): job_state(world, m, s, out, extra) for s in seed_list for m in methods}
    check_models(out, [job for job, state in states.items() if state != "new"], model)
    jobs = jobs_to_run(states)
    # what this invocation will run, so that a reader (the app's Ablation page) can tell done from planned
    atomic_write_json(out / PLAN_FILE, {"world": world, "seeds": seeds, "first_seed": first_seed, "methods": methods,
                                        "extra": extra, "started": time.time()})
    start = time.time()
    failed = []
    children = Children()
    try:
        with ThreadPoolExecutor(workers) as pool, tqdm(total=len(states), initial=len(states) - len(jobs),
                                                        desc=f"ablate {world}", disable=not progress) as bar:
            def launch(m: str, s: int) -> int:  # arguments made at the start: stage1_source looks then
                return children.run(_job_args(world, m, s, out, extra, states[m, s]), out / f"{m}-s{s}.log",
                                    threads)

            futures = {pool.submit(launch, m, s): (m, s) for m, s in jobs}
            try:
                for fut in as_completed(futures):  # the bar moves when any run ends, not in submission order
                    m, s = futures[fut]
                    if code := fut.result():
                        failed.append(f"{m}-s{s} ({ended_by(code)}; log: {out / f'{m}-s{s}.log'})")
                    bar.update(1)
                    bar.set_postfix(last=f"{m}-s{s}")
            except KeyboardInterrupt:  # leaving the pool would otherwise wait for every queued run to finish
                for fut in futures:
                    fut.cancel()
                children.stop()
                print(f"ablate: stopped; the same command with --out {out} resumes it", file=sys.stderr)
                raise
    finally:  # every run has ended (or been cancelled) once the pool is left
        children.close()
    if failed:
        raise RuntimeError(f"ablate: {len(failed)} run(s) failed: {'; '.join(sorted(failed))}")
    check_models(out, list(states), model)  # a default base changed while it ran: its table would mix two
    results = aggregate(out, methods, {m: seed_list for m in methods})
    results["_meta"] = {"world": world, "seeds": seeds, "extra": extra, "wall_seconds": round(time.time() - start, 1),
                        "model": model, "model_build": model_build(model), "model_weights": weights_digest(model),
                        "runs_kept": len(states) - len(jobs),
                        "runs": str(out),
                        "eval": eval_protocol(json.loads((out / f"{methods[0]}-s{first_seed}" / "config.json")
                                                         .read_text()))}
    if first_seed:
        results["_meta"]["first_seed"] = first_seed
    return results
