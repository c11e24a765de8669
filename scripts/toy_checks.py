"""Can a toy base tell its own right steps from its wrong ones? The checks in its second attempts.

A base built with `p_check` > 0 sometimes answers the instruction with a checked second attempt:
with `check_style` "verdict" (tasks.toy.checked_solution) each step of attempt 1 is copied with a
mark, 'v' or 'x', and the right value follows the first 'x'; with "recheck" (recheck_solution) each
step is copied and redone, ``15-8=6:7:7``, a third try deciding when the two disagree; with
"reverse" (reverse_check_solution) attempt 1's answer is worked backwards to the prompt's first
number, ``11-4=7;7+8=15;15-6=9#11``, and a mismatch (``|``) leads to a fresh solve. This samples
two-attempt episodes at temperature 1 (as the toy presets evaluate) and scores every check against
the truth of the step it judges. A useful check flags wrong steps far more often than right ones;
equal rates mean it carries no information, and no reweighting (RL) can turn it into noticing a
mistake (RESULTS.md). With --kind pick it scores the pick world's checks instead
(pick_checks: ``e=9;13-9=4;b=8x|...``, tasks.toy_pick.checked_pick):

    python scripts/toy_checks.py --model ~/.cache/score-workbench/toy-base/<key> --limit 256
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from score_lib.tasks.toy import apply_op, extract_answer
from score_lib.tasks.toy_pick import check_summary as pick_checks, rate  # shared with the toy-base build

STEP_RE = re.compile(r"(\d+)([+\-*])(\d+)=(\d*)(?:([vx])\d*|:(\d*)(?::(\d*))?)")


def step_verdicts(second: str) -> list[tuple[bool, str]] | None:
    """(is the judged step right, 'x' if the check flags it else 'v') for each checked step of a
    second attempt, up to and with the first flag that changes the value (after it the attempt
    re-solves); None when the attempt is not a checked one. A recheck flags a step when its redo
    disagrees with the copied value; the third try then decides, and only a third try that differs
    from the copied value ends the check."""
    out = []
    for step in second.split("#")[0].split(";"):
        m = STEP_RE.fullmatch(step)
        if not m:
            break
        a, op, b, written, verdict, redo, third = m.groups()
        value = apply_op(int(a), op, int(b))
        flagged = verdict == "x" or third is not None
        out.append((written != "" and int(written) == value, "x" if flagged else "v"))
        if verdict == "x" or (third is not None and third != written):
            break
    return out or None


def verdict_summary(pairs: list[tuple[bool, bool, str]]) -> dict:
    """pairs: (attempt 1 right, attempt 2 right, attempt 2) per episode. The share of checked
    second attempts, P('x' | right step), P('x' | wrong step), and per episode: false alarms (any 'x'
    after a right attempt 1), detections (any 'x' after a wrong one) and fixes among the checked."""
    checked = [(c1, c2, step_verdicts(y2)) for c1, c2, y2 in pairs]
    checked = [(c1, c2, v) for c1, c2, v in checked if v]
    steps = [s for _, _, v in checked for s in v]
    right1 = [v for c1, _, v in checked if c1]
    wrong1 = [(c2, v) for c1, c2, v in checked if not c1]
    return {
        "episodes": len(pairs), "checked": len(checked), "checked_share": rate(len(checked), len(pairs)),
        "steps_right": sum(ok for ok, _ in steps), "steps_wrong": sum(not ok for ok, _ in steps),
        "p_x_given_right_step": rate(sum(ok and v == "x" for ok, v in steps), sum(ok for ok, _ in steps)),
        "p_x_given_wrong_step": rate(sum(not ok and v == "x" for ok, v in steps), sum(not ok for ok, _ in steps)),
        "false_alarm": rate(sum(any(x == "x" for _, x in v) for v in right1), len(right1)),
        "detection": rate(sum(any(x == "x" for _, x in v) for _, v in wrong1), len(wrong1)),
        "fix": rate(sum(c2 for c2, _ in wrong1), len(wrong1)),
    }


def recheck_tries(seconds: list[str]) -> dict:
    """Over every rechecked step: how often the redo is right, how often it repeats a wrong copied
    value (a redo biased towards the page is no second opinion), and how often the third try is right."""
    redo_right = wrong_copies = repeated = thirds = third_right = steps = 0
    for second in seconds:
        for step in second.split("#")[0].split(";"):
            m = STEP_RE.fullmatch(step)
            if not m or m[6] is None:
                break
            a, op, b, written, _, redo, third = m.groups()
            value = str(apply_op(int(a), op, int(b)))
            steps += 1
            redo_right += redo == value
            wrong_copies += written != value
            repeated += written != value and redo == written
            if third is not None:
                thirds += 1
                third_right += third == value
                if third != written:
                    break
    return {"rechecked_steps": steps, "redo_right": rate(redo_right, steps),
            "redo_repeats_wrong_copy": rate(repeated, wrong_copies), "third_tries": thirds,
            "third_right": rate(third_right, thirds)}


def reverse_checks(rows: list[tuple[int, list, str, bool, bool, str]]) -> dict:
    """rows: (start, steps, attempt 1, attempt 1 right, attempt 2 right, attempt 2) per episode. A reverse
    check starts from attempt 1's answer with the inverse of the last operation; a '|' is its flag.
    Flag rates by attempt 1's truth, fix and break rates among the checked, the share of right backward
    steps, and how often the flag agrees with the chain the model wrote (end != start)."""
    checked = flagged_right = flagged_wrong = n_right = n_wrong = fixed = broke = 0
    back_steps = back_right = consistent = 0
    for start, steps, first, c1, c2, second in rows:
        answer, (op, b) = extract_answer(first), steps[-1]
        if answer is None or not second.startswith(f"{answer}{'-' if op == '+' else '+'}{b}="):
            continue
        checked += 1
        flag = "|" in second
        chain = second.split("|")[0].split("#")[0].split(";")
        end = None
        for step in chain:
            m = re.fullmatch(r"(-?\d+)([+-])(\d+)=(-?\d+)", step)
            if not m:
                break
            back_steps += 1
            back_right += apply_op(int(m[1]), m[2], int(m[3])) == int(m[4])
            end = int(m[4])
        consistent += flag == (end != start)
        if c1:
            n_right += 1
            flagged_right += flag
            broke += not c2
        else:
            n_wrong += 1
            flagged_wrong += flag
            fixed += c2
    return {"reverse_checked": checked, "reverse_checked_share": rate(checked, len(rows)),
            "p_flag_given_right_a1": rate(flagged_right, n_right), "p_flag_given_wrong_a1": rate(flagged_wrong, n_wrong),
            "reverse_fix": rate(fixed, n_wrong), "reverse_break": rate(broke, n_right),
            "back_step_right": rate(back_right, back_steps), "flag_matches_chain": rate(consistent, checked)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="toy base folder (or toy-base for the default one)")
    ap.add_argument("--limit", type=int, default=256, help="test problems")
    ap.add_argument("--samples", type=int, default=4, help="episodes per problem (temperature 1)")
    ap.add_argument("--n-ops", type=int, default=3, help="operations per problem (toy_n_ops)")
    ap.add_argument("--digits", type=int, default=1, help="digits per operand (toy_digits)")
    ap.add_argument("--kind", choices=("chain", "pick"), default="chain", help="toy world (toy_kind)")
    ap.add_argument("--numbers", type=int, default=5, help="pick world: numbers per list (toy_numbers)")
    ap.add_argument("--seed", type=int, default=123, help="sampling seed")
    ap.add_argument("--json", metavar="FILE", help="also write the summary here")
    args = ap.parse_args(argv)
    if args.limit < 1 or args.samples < 1:
        ap.error(f"--limit and --samples must be at least 1, got {args.limit} and {args.samples}")
    from score_lib.metrics import pair_metrics
    from score_lib.policy import load_policy
    from score_lib.rollout import grade, rollout
    from score_lib.tasks.toy import ToyTask, ToyWorld
    from score_lib.toy_base import TOY_INSTRUCTION

    model, tok = load_policy(args.model)
    task = ToyTask(ToyWorld(digits=args.digits, n_ops=args.n_ops, kind=args.kind, n_numbers=args.numbers))
    episodes = grade(task, rollout(model, tok, task.problems("test", args.limit), [TOY_INSTRUCTION],
                                   n=args.samples, temperature=1.0, max_new_tokens=64, seed=args.seed))
    c1, c2 = [e.attempts[0].reward > 0 for e in episodes], [e.attempts[1].reward > 0 for e in episodes]
    both = pair_metrics(c1, c2)
    summary = {k: round(both[k], 3) for k in ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i")}
    if args.kind == "pick":
        summary |= pick_checks([(e.attempts[0].text, e.attempts[1].text, a, b) for a, b, e in zip(c1, c2, episodes)],
                               [(e.problem.meta["numbers"], e.problem.meta["target"]) for e in episodes])
    else:
        summary |= verdict_summary([(a, b, e.attempts[1].text) for a, b, e in zip(c1, c2, episodes)])
        summary |= recheck_tries([e.attempts[1].text for e in episodes])
        summary |= reverse_checks([(e.problem.meta["start"], e.problem.meta["steps"], e.attempts[0].text, a, b,
                                    e.attempts[1].text) for a, b, e in zip(c1, c2, episodes)])
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
