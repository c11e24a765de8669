"""Offline repair evaluation (the paper's MBPP-R): correct a GIVEN first attempt.

A JSONL file names, one line each, a problem (`id`, as Problem.id) and a first attempt (`first`).
The model reads the problem, that attempt and the task's self-correction instruction, and writes
attempt 2 (rollout.continue_episodes, as the Pair-SFT distribution-shift probe does). Both attempts
are graded, so each problem also shows whether the given attempt was really wrong. The metrics are
the paper's row (evaluate.summarize) plus the repair view of the same counts: the repair rate is
metrics' fix_rate (i->c among wrong first attempts), the break rate c->i among right ones.

`write_first_attempts` makes such a file from a model's own attempt-1 outputs (the paper's MBPP-R
took its wrong programs from another model, PaLM 2; any file works here).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import sandbox
from .config import ConfigError
from .episodes import glue_ids, teacher_forced
from .evaluate import in_chunks, json_row, outcomes, summarize
from .rollout import continue_episodes, grade, rollout
from .tasks import CODE_TASKS
from .tasks.base import Problem
from .tasks.code import repair_episodes_inputs

# searched in this order, each split loaded only while ids are still missing (a toy train split
# takes seconds to generate); a split the task does not have is skipped
SPLITS = ("test", "train", "validation", "prompt")
REPAIR_KEYS = ("first_wrong_share", "repair_rate", "break_rate")


def find_problems(task, ids, split: str | None = None) -> tuple[dict[str, Problem], list[str], str | None]:
    """(problems by id, the splits searched, an example id for error messages)."""
    wanted, found, searched, example = set(ids), {}, [], None
    for s in [split] if split else SPLITS:
        if not wanted - found.keys():
            break
        try:
            probs = task.problems(s)
        except ValueError as e:
            if split:  # the user named it: say why it does not exist
                raise ConfigError(f"--split {split}: {e}") from None
            continue
        searched.append(s)
        example = example or (probs[0].id if probs else None)
        found.update((p.id, p) for p in probs if p.id in wanted)
    return found, searched, example


def read_first_attempts(path: str | Path, task, code: bool = False,
                        split: str | None = None) -> list[tuple[Problem, str]]:
    """(problem, first attempt) per line of a JSONL file; bad input is refused naming file:line and
    field. With `code`, a first attempt without a ``` fence is a bare program and gets wrapped the
    way the policy writes programs (repair_episodes_inputs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"first-attempts file not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows, line_of = [], {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected an object with fields 'id' and 'first', "
                              f"got a JSON {type(obj).__name__}")
        for field in ("id", "first"):
            if field not in obj:
                raise ConfigError(f"{where}: missing field '{field}'")
            if not isinstance(obj[field], str):
                raise ConfigError(f"{where}: field '{field}' must be a string, got {type(obj[field]).__name__}")
        pid = obj["id"]
        if pid in line_of:
            raise ConfigError(f"{where}: field 'id': duplicate id {pid!r} (also on line {line_of[pid]})")
        line_of[pid] = n
        rows.append((pid, obj["first"]))
    if not rows:
        raise ConfigError(f'{path}: no first attempts (expected JSONL lines like {{"id": ..., "first": ...}})')
    found, searched, example = find_problems(task, line_of, split)
    for pid, _ in rows:
        if pid not in found:
            hint = f"; ids look like {example!r}" if example else ""
            raise ConfigError(f"{path}:{line_of[pid]}: field 'id': {pid!r} is not a problem of task "
                              f"{task.name} (splits searched: {', '.join(searched) or 'none'}{hint})")
    items = [(found[pid], first) for pid, first in rows]
    if code:
        bare = [i for i, (_, first) in enumerate(items) if "```" not in first]
        _, wrapped = repair_episodes_inputs([items[i][0] for i in bare], [items[i][1] for i in bare])
        for i, text in zip(bare, wrapped):
            items[i] = (items[i][0], text)
    return items


def _sampling(cfg) -> dict:
    return dict(greedy=cfg.eval_greedy, temperature=cfg.eval_temperature, max_new_tokens=cfg.max_new_tokens)


def repair_eval(model, tok, task, cfg, items: list[tuple[Problem, str]], method: str = "repair",
                progress: bool = False) -> tuple[dict, list]:
    """(metrics, episodes): attempt 2 after each given first attempt, both graded."""
    glue = glue_ids(tok, cfg.instruction)  # rendered once: the chat template is the slow part

    def step(chunk, offset):
        given = [teacher_forced(tok, p, [first], cfg.instruction, glue) for p, first in chunk]
        return continue_episodes(model, tok, given, cfg.instruction, seed=cfg.seed + offset, **_sampling(cfg))

    episodes = grade(task, in_chunks(items, cfg.eval_batch, step, "repair", progress))
    metrics = summarize(episodes, method)
    metrics.update(first_wrong_share=1.0 - metrics["acc_t1"], repair_rate=metrics["fix_rate"])
    return metrics, episodes


def write_first_attempts(model, tok, task, cfg, path: str | Path, problems: list[Problem],
                         only_wrong: bool = False, progress: bool = False) -> tuple[int, float]:
    """Write the model's graded attempt 1 on `problems` as a repair file; (lines written, Acc@t1)."""
    def step(chunk, offset):
        return rollout(model, tok, chunk, [], n=1, seed=cfg.seed + offset, **_sampling(cfg))

    episodes = grade(task, in_chunks(problems, cfg.eval_batch, step, "first attempts", progress))
    firsts = [ep.attempts[0] for ep in episodes]
    lines = [json.dumps({"id": ep.problem.id, "first": a.text, "correct": a.correct})
             for ep, a in zip(episodes, firsts) if not (only_wrong and a.correct)]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines), sum(a.correct for a in firsts) / max(1, len(firsts))


def _rate(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"  # None: nothing to condition on (metrics' convention)


def cmd_repair(args, cfg, paper_row) -> int:
    """`score eval --repair FILE` / `--write-first-attempts FILE`; input is checked before a model loads."""
    from .policy import load_for_eval
    from .tasks import make_task
    from .trainer import _resolve_model

    if args.method == "self-refine":
        raise ConfigError("--repair/--write-first-attempts use the task's self-correction instruction, "
                          "not --method self-refine")
    if args.only_wrong and not args.write_first_attempts:
        raise ConfigError("--only-wrong goes with --write-first-attempts")
    if args.split and not (args.repair or args.write_first_attempts):
        raise ConfigError("--split goes with --repair or --write-first-attempts")
    if args.limit is not None and args.limit < 1:  # no problems: no metrics to report
        raise ConfigError(f"--limit: expected a positive number, got {args.limit}")
    code = cfg.task in CODE_TASKS
    if code and not sandbox.code_exec_allowed():
        raise ConfigError(f"task {cfg.task}: grading runs model-written programs; pass --allow-code-exec "
                          f"(or set {sandbox.ENV_ALLOW}=1) after reading README 'Running model-written code'")
    task = make_task(cfg)
    if args.repair:
        items = read_first_attempts(args.repair, task, code=code, split=args.split)[:args.limit]
    else:
        try:
            problems = task.problems(args.split or "test", args.limit or cfg.eval_problems)
        except ValueError as e:
            raise ConfigError(f"--split: {e}") from None
    model, tok = load_for_eval(_resolve_model(cfg), cfg)
    if not args.repair:
        n, acc = write_first_attempts(model, tok, task, cfg, args.write_first_attempts, problems,
                                      only_wrong=args.only_wrong, progress=True)
        which = "wrong first attempts" if args.only_wrong else "first attempts"
        print(f"wrote {n} {which} to {args.write_first_attempts} (Acc@t1 {acc:.3f}, n={len(problems)})")
        return 0
    metrics, episodes = repair_eval(model, tok, task, cfg, items, method=f"repair {args.model}", progress=True)
    print(f"repair n={metrics['n_problems']}  first wrong {metrics['first_wrong_share']:.3f}  "
          f"repair rate {_rate(metrics['repair_rate'])}  break rate {_rate(metrics['break_rate'])}  "
          f"Acc@t2 {metrics['acc_t2']:.3f}")
    print(paper_row(metrics))
    if args.json:
        row = {**json_row(metrics), **{k: metrics[k] for k in REPAIR_KEYS}, "problems": outcomes(episodes)}
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
    return 0
