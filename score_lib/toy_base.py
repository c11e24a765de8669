"""Build and cache the toy base model: a tiny Llama trained from scratch on two-attempt traces.

The corpus (tasks.toy.base_corpus) gives the model the paper's base-model habits: a first attempt
that is often right, and a second attempt that either copies the first or re-solves it carelessly.
Training is plain next-token cross-entropy on the assistant turns (the prompt and the instruction
are context), until the model's sampled first-attempt accuracy on held-out problems reaches a target
(so every seed gives a base of the same capability), within a step cap and a wall-clock safety cap.
In the pick world the stopping rule can also ask for a check that works (target_flag_gap): a base
defined by what it can solve and by what it can see of its own mistakes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .episodes import collate, glue_ids, teacher_forced
from .policy import save_policy, toy_model, toy_tokenizer
from .tasks.toy import ToyWorld, base_corpus

TOY_INSTRUCTION = "Check for a mistake."


@dataclass(frozen=True)
class ToyBaseConfig:
    """Everything that decides the toy base model (its hash names the cache folder)."""

    digits: int = 1
    """Digits per operand of the toy world."""
    n_ops: int = 3
    """Operations per problem."""
    ops: str = "+-"
    """Operators of the toy world."""
    kind: str = "chain"
    """Toy world: "chain" (arithmetic chains) or "pick" (which two numbers reach a target; tasks.toy_pick)."""
    n_numbers: int = 5
    """Pick world: numbers per list."""
    p_copy: float = 0.5
    """Share of corpus second attempts that copy the first attempt verbatim."""
    slip1: float = 0.0
    """Per-step slip rate of corpus first attempts (0: errors come only from limited capability)."""
    slip2: float = 0.25
    """Per-step slip rate of corpus second attempts that re-solve (the careless habit)."""
    p_wrong: float = 0.2
    """Share of corpus conversations whose attempt 1 has one slipped step, shown (never trained on) so
    that its correction can be learned: the base can fix mistakes but seldom does (docs/toy_world.md)."""
    p_fix: float = 0.5
    """In those conversations, share of attempts 2 that are the correct solution (else a copy)."""
    p_check: float = 0.0
    """Share of corpus conversations whose attempt 2 checks attempt 1 (see check_style) and fixes what
    the check finds: a verification habit the base seldom uses. 0: none (the default)."""
    check_slipped: float = 0.5
    """In those conversations, share of first attempts with one slipped step (context, never trained on)."""
    check_style: str = "verdict"
    """How those attempts 2 check: "verdict" (a v/x mark after each copied step), "recheck" (each step
    redone, a third try when the two disagree) or "reverse" (attempt 1's answer worked backwards to the
    prompt's first number; solved again on a mismatch). See tasks.toy."""
    instruction: str = TOY_INSTRUCTION
    """Self-correction instruction placed between the attempts in the corpus."""
    hidden: int = 128
    """Model width."""
    layers: int = 4
    """Transformer layers."""
    corpus_size: int = 15000
    """Distinct training problems in the corpus."""
    batch_size: int = 32
    """Conversations per optimiser step."""
    lr: float = 3e-3
    """AdamW learning rate (linear warm-up, then constant: see lr_decay)."""
    lr_decay: bool = False
    """Cosine-decay the learning rate to 0 by max_steps. Off by default: an annealed model is sharp
    (87% at temperature 1 after 600 steps); an unannealed one knows the steps (74% greedy) but samples
    wrong digits at temperature 1 (about 60%), like a base model that is not yet confident."""
    max_steps: int = 1600
    """Most optimiser steps (about 150 s per 640 on 2 idle cores)."""
    warmup_steps: int = 0
    """Steps of linear learning-rate warm-up (0: max_steps // 20). Set it to the old cap's twentieth to raise
    max_steps and keep the same trajectory: a build with a longer cap then continues the shorter one."""
    target_acc: float = 0.45
    """Stop at the first check whose sampled Acc@t1 on held-out problems reaches this (0: run all
    max_steps). At a constant learning rate the accuracy at a fixed step swings with the seed (and
    even the thread count) from 0.18 to 0.76; the target defines the base by its capability instead."""
    target_flag_gap: float = 0.0
    """Pick world: also require, at the same check, that the base's checked second attempts flag a
    wrong first attempt at least this much more often than a right one (P(x | wrong) - P(x | right),
    tasks.toy_pick.check_summary). A fixed step count decides where a build lands (docs/toy_world.md);
    this defines the base by its accuracy and its check together. 0: accuracy alone."""
    check_every: int = 20
    """Optimiser steps between two held-out checks (with target_acc or target_flag_gap > 0)."""
    fine_check_every: int = 0
    """Steps between checks once the last check's Acc@t1 is within fine_check_margin of target_acc (0: every
    check_every steps throughout). Near its end a build's accuracy climbs fast (a pick base: 0.50, 0.61, 0.72
    at steps 1600, 1650, 1700), so a coarse grid stops up to one interval's climb past the target."""
    fine_check_margin: float = 0.1
    """How far below target_acc the fine checks begin (with fine_check_every > 0)."""
    check_problems: int = 512
    """Held-out training-split problems (never in the corpus) each check samples once at temperature 1."""
    max_seconds: float = 1800.0
    """Wall-clock cap (tests use a few seconds). A build it stops early depends on the machine's speed: it
    says so (`stopped_by` in toy_base.json, a warning), since the cache key cannot tell it apart."""
    seed: int = 0
    """Seed of the corpus and the initial weights."""

    def __post_init__(self):
        if self.target_flag_gap and self.kind != "pick":
            raise ValueError(f"toy base: target_flag_gap scores the pick world's checks; kind is {self.kind!r}")

    def world(self) -> ToyWorld:
        return ToyWorld(digits=self.digits, n_ops=self.n_ops, ops=self.ops, kind=self.kind, n_numbers=self.n_numbers)

    def key(self) -> str:
        fields = asdict(self)
        if not self.p_wrong:  # settings added later are left out while unused: old caches stay valid
            del fields["p_wrong"], fields["p_fix"]
        if self.kind == "chain":
            del fields["kind"], fields["n_numbers"]
        if not self.warmup_steps:
            del fields["warmup_steps"]
        if not self.p_check:
            del fields["p_check"], fields["check_slipped"], fields["check_style"]
        if not (self.fine_check_every and self.target_acc):  # fine checks follow an accuracy target only
            del fields["fine_check_every"], fields["fine_check_margin"]
        if not self.target_flag_gap:
            del fields["target_flag_gap"]
            if not self.target_acc:
                del fields["target_acc"], fields["check_every"], fields["check_problems"]
        blob = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:10]


# where a world's default base departs from ToyBaseConfig's defaults. The pick world's base checks in
# some second attempts and re-scans carelessly in the others (Delta < 0 with a check that works), and
# stops on its accuracy and its check together: its check forms long before its accuracy climbs, so an
# accuracy target alone stops before the check exists and a fixed step count lands anywhere from a base
# right 41% of the time to one right 89% (docs/toy_world.md, "A base between the two"). The chain
# world's base never had a check.
WORLD_BASE_DEFAULTS: dict[str, dict] = {
    "chain": {},
    "pick": {"p_check": 0.35, "slip2": 0.5, "p_copy": 0.3, "target_acc": 0.65, "target_flag_gap": 0.4,
             "max_steps": 3200, "check_every": 50, "fine_check_every": 10, "max_seconds": 3000.0},
}


def default_base(kind: str = "chain", **fields) -> ToyBaseConfig:
    """The default base of toy world `kind`, with `fields` overriding."""
    if kind not in WORLD_BASE_DEFAULTS:
        raise ValueError(f"toy base: kind must be one of {', '.join(WORLD_BASE_DEFAULTS)}, got {kind!r}")
    return ToyBaseConfig(**{"kind": kind, **WORLD_BASE_DEFAULTS[kind], **fields})


def cache_root() -> Path:
    return Path(os.environ.get("SCORE_CACHE_DIR", Path.home() / ".cache" / "score-workbench"))


def toy_base_path(cfg: ToyBaseConfig | None = None) -> Path:
    cfg = cfg or ToyBaseConfig()
    return cache_root() / "toy-base" / cfg.key()


# Builds that come with the workbench, one folder per cache key. A build is chaotic: the same recipe and
# seed rebuilt on another CPU rounds differently, stops elsewhere and gives other tables (RESULTS.md), so
# the recorded tables' base ships with the code and every machine starts from the same weights.
SHIPPED_DIR = Path(__file__).parent / "toy_bases"


def shipped_base(cfg: ToyBaseConfig) -> Path | None:
    """The shipped build of this recipe, or None when the workbench carries none."""
    path = SHIPPED_DIR / cfg.key()
    return path if (path / "toy_base.json").exists() else None


def build_machine() -> dict:
    """Where a build ran: its kernels decide how its float sums round, and so where it stops."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "kernels": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def _staging(out: Path) -> Path:
    """Where a base is written before it takes its cache name (_publish)."""
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _publish(tmp: Path, out: Path, meta: dict) -> None:
    """Write toy_base.json last, then give the folder its cache name in one step: a crash never leaves a
    half model under that name, and a leftover folder without toy_base.json is replaced."""
    (tmp / "toy_base.json").write_text(json.dumps(meta, indent=2))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def _install_shipped(shipped: Path, out: Path, progress: bool) -> Path:
    """Copy the shipped build into the cache, marked as shipped."""
    tmp = _staging(out)
    shutil.copytree(shipped, tmp)
    meta = {**json.loads((shipped / "toy_base.json").read_text()), "source": "shipped"}
    _publish(tmp, out, meta)
    if progress:
        print(f"toy base {out.name}: the build shipped with the workbench ({meta['steps']} steps, built on "
              f"{meta.get('built_on', {}).get('cpu', 'an unrecorded CPU')}); `score toy-base --force` builds it "
              "on this machine instead", file=sys.stderr)
    return out


def corpus_loss_mask(attempt_index: torch.Tensor, first_in_loss: list[bool]) -> torch.Tensor:
    """[B, L-1] booleans over target tokens: the assistant turns, except attempt 1 of a conversation
    whose first attempt is a shown mistake (read as context, never learned)."""
    target = attempt_index[:, 1:]
    shown = ~torch.tensor(first_in_loss, dtype=torch.bool)[:, None]
    return (target >= 0) & ~(shown & (target == 0))


def check_problems(cfg: ToyBaseConfig) -> list:
    """The held-out problems of the accuracy checks: the training-split problems drawn right after the
    corpus's (generate is sequential, so the first corpus_size are exactly the corpus's problems)."""
    from .tasks.toy import generate

    return generate(cfg.world(), "train", cfg.corpus_size + cfg.check_problems, cfg.seed)[cfg.corpus_size:]


def sampled_acc_t1(model, tok, problems: list, seed: int, world: ToyWorld | None = None) -> float:
    """Share of first attempts that are right, one sample each at temperature 1 (how the toy presets
    evaluate: a greedy base nearly always gives its single most likely answer)."""
    from .rollout import grade, rollout
    from .tasks.toy import ToyTask

    episodes = grade(ToyTask(world), rollout(model, tok, problems, [], n=1, temperature=1.0, max_new_tokens=48, seed=seed))
    return sum(e.attempts[0].reward for e in episodes) / len(episodes)


def held_out_check(model, tok, problems: list, seed: int, cfg: ToyBaseConfig) -> dict:
    """One point of the build's learning curve: sampled Acc@t1 and, with target_flag_gap, what the
    base's pick checks say about its own first attempts (two-attempt episodes at temperature 1, as the
    toy preset samples them)."""
    if not cfg.target_flag_gap:
        return {"acc_t1": sampled_acc_t1(model, tok, problems, seed, cfg.world())}
    from .rollout import grade, rollout
    from .tasks.toy import ToyTask
    from .tasks.toy_pick import check_summary

    episodes = grade(ToyTask(cfg.world()), rollout(model, tok, problems, [cfg.instruction], n=1, temperature=1.0,
                                                   max_new_tokens=64, seed=seed))
    right = [e.attempts[0].reward > 0 for e in episodes]
    s = check_summary([(e.attempts[0].text, e.attempts[1].text, r, e.attempts[1].reward > 0)
                       for r, e in zip(right, episodes)],
                      [(e.problem.meta["numbers"], e.problem.meta["target"]) for e in episodes])
    return {"acc_t1": sum(right) / len(right), "checked_share": s["pick_checked_share"],
            "flag_right": s["p_flag_given_right_a1"], "flag_wrong": s["p_flag_given_wrong_a1"]}


def check_due(step: int, checks: list[dict], cfg: ToyBaseConfig) -> bool:
    """Whether the held-out check runs after optimiser step `step` (counted from 1): every check_every steps,
    and every fine_check_every while the last check is within fine_check_margin below target_acc (> 0). A
    check at or past the target that did not stop the build (its flag gap is missing) goes back to the coarse
    grid: the fine one is there to stop the accuracy's climb near the target, and past it a check every few
    steps would only slow the build (the harder world's 6000-step probe ran at a fifth of its speed there)."""
    every = cfg.check_every
    near = checks and cfg.target_acc - cfg.fine_check_margin <= checks[-1]["acc_t1"] < cfg.target_acc
    if cfg.fine_check_every and cfg.target_acc and near:
        every = min(every, cfg.fine_check_every)
    return step % every == 0


def reached_target(point: dict, cfg: ToyBaseConfig) -> bool:
    """Whether a learning-curve point meets the build's stopping rule (accuracy, and the check's flag gap
    when one is asked for; a check never written, or never on a right or a wrong attempt, has no gap)."""
    if point["acc_t1"] < cfg.target_acc:
        return False
    if not cfg.target_flag_gap:
        return True
    if point["flag_right"] is None or point["flag_wrong"] is None:
        return False
    return point["flag_wrong"] - point["flag_right"] >= cfg.target_flag_gap


def stop_summary(meta: dict) -> str:
    """A build's last held-out check against its target, in words (toy_base.json's dict, with checks)."""
    last, cfg = meta["checks"][-1], meta["config"]
    verdict = "reached" if meta["reached_target"] else "did NOT reach"
    flags = (f", checks flag wrong / right first attempts {last['flag_wrong']} / {last['flag_right']}"
             if "flag_wrong" in last else "")
    target = f"Acc@t1 {cfg['target_acc']}" + (f" and a flag gap of {cfg['target_flag_gap']}"
                                               if cfg.get("target_flag_gap") else "")
    return (f"sampled Acc@t1 on held-out problems {last['acc_t1']:.3f} at step {last['step']}{flags}: "
            f"{verdict} the target ({target})")


class ClockStopped(UserWarning):
    """A build its wall-clock cap stopped (toy_base.json: stopped_by max_seconds)."""


def lr_schedule(cfg: ToyBaseConfig):
    """The learning rate of each optimiser step (from 0): linear warm-up, then constant (or cosine to 0 by
    max_steps with lr_decay). Without lr_decay it depends on max_steps only through the default warm-up."""
    warmup = cfg.warmup_steps or max(1, cfg.max_steps // 20)

    def lr_at(step):
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        if not cfg.lr_decay:
            return cfg.lr
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.max_steps - warmup)))
    return lr_at


def build_toy_base(cfg: ToyBaseConfig | None = None, force: bool = False, progress: bool = True) -> Path:
    """Train the toy base model unless a cached copy exists; return its folder."""
    from tqdm import tqdm

    cfg = cfg or ToyBaseConfig()
    out = toy_base_path(cfg)
    if (out / "toy_base.json").exists() and not force:
        return out
    if not force and (shipped := shipped_base(cfg)) is not None:
        return _install_shipped(shipped, out, progress)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = toy_tokenizer()
    model = toy_model(tok, hidden=cfg.hidden, layers=cfg.layers, seed=cfg.seed)
    from .tasks.base import Problem

    glue = glue_ids(tok, cfg.instruction)
    corpus = base_corpus(cfg.world(), cfg.corpus_size, cfg.seed, cfg.p_copy, cfg.slip1, cfg.slip2,
                         cfg.p_wrong, cfg.p_fix, cfg.p_check, cfg.check_slipped, cfg.check_style)
    episodes = [teacher_forced(tok, Problem(id=c.prompt, prompt=c.prompt, answer=""), [c.first, c.second],
                               cfg.instruction, glue) for c in corpus]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    lr_at = lr_schedule(cfg)
    held_out = check_problems(cfg) if cfg.target_acc or cfg.target_flag_gap else []
    checks = []  # {step, acc_t1[, flag rates]} on held_out: the learning curve, kept in toy_base.json
    model.train()
    start, losses = time.time(), []
    stopped_by = "max_steps"  # or "target", or "max_seconds": the clock, which a busy machine reaches sooner
    bar = tqdm(range(cfg.max_steps), desc="toy-base", disable=not progress)
    for step in bar:
        picked = rng.sample(range(len(episodes)), cfg.batch_size)
        batch = collate([episodes[i] for i in picked], tok.pad_token_id)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        target_mask = corpus_loss_mask(batch["attempt_index"], [corpus[i].first_in_loss for i in picked])
        loss = torch.nn.functional.cross_entropy(logits[:, :-1][target_mask], batch["input_ids"][:, 1:][target_mask])
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        shown = {k: v for k, v in (checks[-1] if checks else {}).items() if k != "step"}  # the last check
        bar.set_postfix(loss=f"{loss.item():.3f}", **shown)
        if held_out and check_due(step + 1, checks, cfg):
            checks.append({"step": step + 1, **held_out_check(model, tok, held_out, cfg.seed + step, cfg)})
            model.train()
            if reached_target(checks[-1], cfg):
                stopped_by = "target"
                break
        if time.time() - start > cfg.max_seconds and step + 1 < cfg.max_steps:
            stopped_by = "max_seconds"
            break
    model.eval()
    tmp = _staging(out)
    save_policy(model, tok, tmp)
    meta = {"config": asdict(cfg), "steps": step + 1, "seconds": round(time.time() - start, 1),
            "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "parameters": sum(p.numel() for p in model.parameters()), "checks": checks,
            "reached_target": bool(checks) and reached_target(checks[-1], cfg), "stopped_by": stopped_by,
            "built_on": build_machine()}
    _publish(tmp, out, meta)
    if stopped_by == "max_seconds":
        warnings.warn(f"toy base {out}: its wall-clock cap (max_seconds={cfg.max_seconds:g}) stopped it at step "
                      f"{step + 1} of {cfg.max_steps}, before its target or last step; a busier or slower machine "
                      "stops sooner, so this base may differ from the recipe's on an idle machine (rebuild with "
                      "--force when idle, or raise max_seconds)", ClockStopped, stacklevel=2)
    return out


def config_from(overrides: list[str]) -> ToyBaseConfig:
    """ToyBaseConfig with `key=value` overrides applied, each value coerced to its field's type;
    a malformed override, unknown key or bad value raises a ValueError naming it."""
    from .config import _coerce  # here: config imports this module

    types = {f.name: f.type for f in dataclasses.fields(ToyBaseConfig)}
    values = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r}: expected key=value")
        if key not in types:
            raise ValueError(f"unknown toy-base setting {key!r} (known: {', '.join(types)})")
        values[key] = _coerce(key, types[key], raw)
    return dataclasses.replace(default_base(values.get("kind", "chain")), **values)
