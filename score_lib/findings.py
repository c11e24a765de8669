"""Does an ablation show the paper's findings? Issue 3's five findings, each claim checked with its numbers.

Input: what `score ablate` aggregates ({method: {metric: {"mean", "std", "per_seed"}}, "delta_stderr",
"n_problems"}), from a run or from a recorded JSON. Output: per finding, its claims, each with a status and
the numbers behind it, so that a table says where a finding does not appear instead of leaving it to the
reader. A claim counts only when its number clears its standard error. A difference between two methods
uses the seeds' own error, paired by seed (each seed's value carries its evaluation's sampling noise, and two
methods of one seed are evaluated on the same problems with the same sampling seed, so pairing removes what
they share); with one seed, the two evaluations' sampling errors. One method's value (the sign of Delta) uses
the larger of its seeds' error and its test episodes' sampling error. Words of the issue
without a number ("a small fraction", "close to 0", "much larger") are `Rules` fields, stated in every table.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from .metrics import mean_std, stderr
from .runs import model_key

# the methods trained with RL in the paper's Table 4 (finding 2 ranks single-turn RL among these)
RL_METHODS = ("st-rl", "mt-rl", "no-stage1", "no-shaping", "star-stage2", "score")
NAMES = {"acc_t1": "Acc@t1", "delta": "Delta", "delta_c2i": "c->i"}
ORDER = {"yes": 0, "tie": 1, "partly": 1, "no": 2}  # a group of comparisons is as good as its worst one


@dataclass
class Rules:
    """Numbers for the issue's words that carry none."""
    small_fraction: float = 0.25
    """Finding 3, "a small fraction of the base model's": at most this share of its answer-change rate."""
    near_zero: float = 0.25
    """Findings 3-4, "Delta close to 0": |Delta| within this share of the base's |Delta| (or within one SE of 0)."""
    collapse_ratio: float = 1.5
    """Finding 4, "a much larger share": unchanged second attempts at least this multiple of the base's share."""


@dataclass
class Claim:
    text: str
    status: str
    """yes | tie (within one SE) | partly | no | not run (a method it needs is missing)"""
    numbers: str


@dataclass
class Finding:
    number: int
    title: str
    claims: list[Claim]

    @property
    def verdict(self) -> str:
        """yes if every checked claim holds, no if none does, else "in part"; "not run" if none was checked."""
        checked = [c.status for c in self.claims if c.status != "not run"]
        if not checked:
            return "not run"
        if all(s == "yes" for s in checked):
            return "yes"
        return "no" if all(s == "no" for s in checked) else "in part"

    @property
    def tally(self) -> str:
        """The verdict with how many checked claims hold, e.g. "in part (4 of 5 hold)"."""
        checked = [c.status for c in self.claims if c.status != "not run"]
        if len(checked) <= 1 or (self.verdict == "yes" and len(checked) == len(self.claims)):
            return self.verdict
        return f"{self.verdict} ({sum(s == 'yes' for s in checked)} of {len(checked)} hold)"


def _m(row: dict, key: str) -> float:
    return row[key]["mean"]


def delta_se(row: dict, n: int) -> float:
    """Sampling standard error of a row's Delta over its n test episodes (all seeds): Delta is a mean of
    per-episode differences in {-1, 0, 1}, whose variance is the share that flips minus Delta squared."""
    flips = _m(row, "delta_i2c") + _m(row, "delta_c2i")
    return max(0.0, flips - _m(row, "delta") ** 2) ** 0.5 / n ** 0.5


def _sampling_se(row: dict, key: str) -> float:
    """Sampling standard error of a row's pooled mean of `key` over all its test episodes."""
    n = row["n_problems"] * len(row[key]["per_seed"])
    if key == "delta":
        return row.get("delta_stderr", delta_se(row, n))
    return stderr(min(max(_m(row, key), 0.0), 1.0), n)


def value_se(row: dict, key: str) -> float:
    """Standard error of one row's mean: over its seeds, but never below the sampling error of its test
    episodes (seeds evaluated greedily on the same problems repeat one number and would claim none)."""
    k = len(row[key]["per_seed"])
    return max(row[key]["std"] / math.sqrt(k), _sampling_se(row, key))


def seeds_of(row: dict, key: str) -> list:
    """The seeds behind a row's per-seed values of `key` (its "seeds" list; rows written without one: 0..k-1)."""
    return row.get("seeds", list(range(len(row[key]["per_seed"]))))


def paired(results: dict, a: str, b: str, key: str) -> bool:
    """Do two rows hold the same seeds?"""
    return seeds_of(results[a], key) == seeds_of(results[b], key)


def paired_se(xa: list[float], xb: list[float]) -> float:
    """Standard error of the mean of xa - xb, paired by seed (two or more seeds)."""
    return mean_std([x - y for x, y in zip(xa, xb)])["std"] / math.sqrt(len(xa))


def diff_se(results: dict, a: str, b: str, key: str) -> tuple[float, float]:
    """Method a minus method b in `key`, and the standard error of that difference: paired by seed when both
    have the same two or more seeds; otherwise from each mean's own error, as if independent."""
    xa, xb = results[a][key]["per_seed"], results[b][key]["per_seed"]
    diff = _m(results[a], key) - _m(results[b], key)
    if paired(results, a, b, key) and len(xa) > 1:
        return diff, paired_se(xa, xb)
    return diff, math.hypot(value_se(results[a], key), value_se(results[b], key))


def _versus(diff: float, se: float) -> str:
    return "yes" if diff > se else "no" if diff < -se else "tie"


def _label(key: str) -> str:
    from .ablate import ABLATIONS

    return ABLATIONS[key][0] if key in ABLATIONS else key


def ranks_first(results: dict, m: str, key: str, among, higher: bool = True, group: str = "methods") -> Claim:
    """Is method m's `key` the highest (or lowest) of `among`? As good as its worst comparison."""
    word = ("highest" if higher else "lowest") if key != "delta" else "largest"
    others = [o for o in among if o != m and o in results]
    if m not in results or not others:
        return Claim(f"{_label(m)}: the {word} {NAMES.get(key, key)}", "not run", "")
    sign = 1 if higher else -1
    comps = []
    for o in others:
        d, se = diff_se(results, m, o, key)
        comps.append((ORDER[_versus(sign * d, se)], sign * d, o, se))
    rank, margin, o, se = max(comps, key=lambda c: (c[0], -c[1]))
    status = _versus(margin, se)
    fmt = "+.3f" if key == "delta" else ".3f"
    return Claim(f"{_label(m)}: the {word} {NAMES.get(key, key)} of the {len(others) + 1} {group}", status,
                 f"{_m(results[m], key):{fmt}}; closest: {_label(o)} {_m(results[o], key):{fmt}} "
                 f"(difference {sign * margin:+.3f}, SE {se:.3f})")


def above(results: dict, m: str, o: str, key: str = "delta") -> Claim:
    text = f"{_label(m)} above {_label(o)} in {NAMES.get(key, key)}"
    if m not in results or o not in results:
        return Claim(text, "not run", "")
    d, se = diff_se(results, m, o, key)
    per = ""
    if paired(results, m, o, key):
        per = "; per seed " + ", ".join(f"{x - y:+.3f}" for x, y in zip(results[m][key]["per_seed"],
                                                                        results[o][key]["per_seed"]))
    return Claim(text, _versus(d, se), f"{_m(results[m], key):+.3f} vs {_m(results[o], key):+.3f} "
                                       f"(difference {d:+.3f}, SE {se:.3f}{per})")


def near_zero(results: dict, m: str, rules: Rules) -> Claim:
    text = f"{_label(m)}: Delta close to 0"
    if m not in results or "base" not in results:
        return Claim(text, "not run", "")
    d, se, bound = _m(results[m], "delta"), value_se(results[m], "delta"), rules.near_zero * abs(_m(results["base"], "delta"))
    return Claim(text, "yes" if abs(d) <= max(bound, se) else "no",
                 f"{d:+.3f} (SE {se:.3f}); close: within ±{bound:.3f} ({rules.near_zero:g} x the base's) or one SE")


def _split(results: dict, m: str) -> str:
    keys = ("answer_change_if_right", "answer_change_if_wrong")
    if not all(k in results[m] and k in results["base"] for k in keys):
        return ""
    r, w = (f"{_m(results['base'], k):.3f} -> {_m(results[m], k):.3f}" for k in keys)
    return f"; if y1 right {r}, if y1 wrong {w}"


def check(results: dict, rules: Rules | None = None) -> list[Finding]:
    """The five findings of issue 3 on one ablation's aggregated results."""
    rules = rules or Rules()
    R = results
    everyone = [m for m in R if not m.startswith("_")]
    out = []

    # 1. the base model's second attempt breaks more than it fixes
    if "base" in R:
        d, se = _m(R["base"], "delta"), value_se(R["base"], "delta")
        c1 = Claim("Base model: Delta < 0 (c->i above i->c)", _versus(-d, se),
                   f"{d:+.3f} (SE {se:.3f}); i->c {_m(R['base'], 'delta_i2c'):.3f}, c->i {_m(R['base'], 'delta_c2i'):.3f}")
    else:
        c1 = Claim("Base model: Delta < 0 (c->i above i->c)", "not run", "")
    out.append(Finding(1, "Base model: Delta < 0", [c1]))

    # 2. single-turn RL has the best first attempt and no self-correction
    claims = [ranks_first(R, "st-rl", "acc_t1", RL_METHODS, group="RL methods")]
    if "st-rl" in R:
        d, se = _m(R["st-rl"], "delta"), value_se(R["st-rl"], "delta")
        claims.append(Claim("Single-turn RL: Delta <= 0", "yes" if d <= 0 else "tie" if d <= se else "no",
                            f"{d:+.3f} (SE {se:.3f})"))
    else:
        claims.append(Claim("Single-turn RL: Delta <= 0", "not run", ""))
    out.append(Finding(2, "Single-turn RL: the highest Acc@t1 of the RL methods, Delta <= 0", claims))

    # 3. multi-turn RL stops changing its answer (Fig. 6b) and learns no correction
    text = f"Multi-turn RL: answer-change rate at most {rules.small_fraction:g} x the base's"
    if "mt-rl" in R and "base" in R:
        a, b = _m(R["mt-rl"], "answer_change_rate"), _m(R["base"], "answer_change_rate")
        d, se = diff_se(R, "base", "mt-rl", "answer_change_rate")
        ratio = a / b if b else math.inf
        status = "yes" if ratio <= rules.small_fraction and d > se else "partly" if d > se else "no"
        c3 = Claim(text, status, f"{b:.3f} -> {a:.3f} ({ratio:.0%} of the base's){_split(R, 'mt-rl')}")
    else:
        c3 = Claim(text, "not run", "")
    out.append(Finding(3, "Multi-turn RL: answer changes fall to a small fraction, Delta close to 0",
                       [c3, near_zero(R, "mt-rl", rules)]))

    # 4. SFT on its own traces with c->c examples collapses into keeping the first attempt
    claims = []
    for m in ("star-plus", "pair-sft-plus"):
        text = f"{_label(m)}: unchanged second attempts at least {rules.collapse_ratio:g} x the base's share"
        if m in R and "base" in R:
            a, b = _m(R[m], "edit_ratio_zero_share"), _m(R["base"], "edit_ratio_zero_share")
            d, se = diff_se(R, m, "base", "edit_ratio_zero_share")
            ratio = a / b if b else math.inf
            status = "yes" if ratio >= rules.collapse_ratio and d > se else "partly" if d > se else "no"
            claims.append(Claim(text, status, f"{a:.3f} vs {b:.3f} ({ratio:.2f} x; SE of the difference {se:.3f})"))
        else:
            claims.append(Claim(text, "not run", ""))
        claims.append(near_zero(R, m, rules))
    out.append(Finding(4, "STaR+ and Pair-SFT+: collapse (many unchanged second attempts), Delta close to 0", claims))

    # 5. SCoRe
    claims = [ranks_first(R, "score", "delta", everyone)]
    if "score" in R:
        per = R["score"]["delta"]["per_seed"]
        pos = sum(x > 0 for x in per)
        claims.append(Claim("SCoRe: Delta > 0 in every seed", "yes" if pos == len(per) else "partly" if pos else "no",
                            f"{pos} of {len(per)}: {', '.join(f'{x:+.3f}' for x in per)}"))
    else:
        claims.append(Claim("SCoRe: Delta > 0 in every seed", "not run", ""))
    claims += [ranks_first(R, "score", "delta_c2i", everyone, higher=False),
               above(R, "score", "no-stage1"), above(R, "score", "no-shaping")]
    out.append(Finding(5, "SCoRe: the largest Delta, > 0 in every seed, the lowest c->i, above both ablations",
                       claims))
    return out


def markdown(found: list[Finding], rules: Rules | None = None) -> str:
    """One row per claim; each finding's verdict on its first row."""
    rules = rules or Rules()
    lines = ["Findings (issue 3). A claim holds when its number clears its standard error (\"tie\" within it): "
             "differences between methods over the seeds, paired by seed (one seed: sampling error); one "
             "method's value, the larger of its seeds' and its test episodes' sampling error. Rules: "
             + ", ".join(f"{f.name} {getattr(rules, f.name):g}" for f in fields(rules)) + ".", "",
             "| finding | holds? | claim | status | numbers |", "|---|---|---|---|---|"]
    for f in found:
        for i, c in enumerate(f.claims):
            head = f"{f.number}. {f.title} | **{f.tally}**" if i == 0 else " | "
            lines.append(f"| {head} | {c.text} | {c.status} | {c.numbers or '-'} |")
    return "\n".join(lines) + "\n"


def scorecard(checked: dict[str, tuple[dict, list[Finding]]]) -> str:
    """One row per ablation ({name: (results, findings)}): its world, seeds and each finding's verdict."""
    lines = ["| ablation | world | seeds | " + " | ".join(str(n) for n in range(1, 6)) + " |",
             "|---|---|---|" + "---|" * 5]
    for name, (results, found) in checked.items():
        meta = results.get("_meta", {})
        lines.append(f"| {name} | {meta.get('world', '-')} | {meta.get('seeds', '-')} | "
                     + " | ".join(f.tally for f in found) + " |")
    return "\n".join(lines) + "\n"


def as_json(found: list[Finding], rules: Rules | None = None) -> dict:
    return {"rules": asdict(rules or Rules()),
            "findings": [{**asdict(f), "verdict": f.verdict, "tally": f.tally} for f in found]}


def load(path) -> dict:
    """An ablation's results from its --json file, or from its folder as it stands (finished runs only);
    refused with the file, method and field at fault."""
    import json
    from pathlib import Path

    from .ablate import ABLATIONS
    from .ablation_table import folder_results

    if Path(path).is_dir():
        return folder_results(Path(path))
    try:
        results = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected the object `score ablate --json` writes, got a {type(results).__name__}")
    methods = [m for m in results if not m.startswith("_")]
    if not methods:
        raise ValueError(f"{path}: no method rows (keys: {', '.join(results) or 'none'})")
    for m in methods:
        if m not in ABLATIONS:
            raise ValueError(f"{path}: unknown method {m!r} (known: {', '.join(ABLATIONS)})")
        for k in ("acc_t1", "delta", "delta_i2c", "delta_c2i", "answer_change_rate", "edit_ratio_zero_share"):
            v = results[m].get(k) if isinstance(results[m], dict) else None
            if not (isinstance(v, dict) and {"mean", "std", "per_seed"} <= set(v)):
                raise ValueError(f"{path}: method {m!r}: field {k!r} is missing or not {{mean, std, per_seed}}")
        if not isinstance(results[m].get("n_problems"), int):
            raise ValueError(f"{path}: method {m!r}: field 'n_problems' is missing or not an integer")
    return results


def pool(recordings: dict[str, dict]) -> dict:
    """Several recordings of one ablation (more seeds, or the same seeds drawn by another machine's sampling
    stream) checked as one: each method's per-seed values side by side, its seeds labelled by recording
    ("1:0" is seed 0 of the second file), so that methods recorded in every file still pair seed by seed.
    Refused, naming the file, where the recordings differ in world, in the model they started from (where
    both recorded it: `_meta.model`, a toy base by its cache key, then by its weights, `_meta.model_weights`,
    where both have them, else by `_meta.model_build`, since one key rebuilt on another CPU can be another
    base) or in test episodes per seed."""
    names = list(recordings)
    world = recordings[names[0]].get("_meta", {}).get("world")
    first_model: tuple[str, str] | None = None  # (model key, the first recording that names one)
    first_build: tuple[str, str] | None = None  # (model_build, the first recording that names one)
    first_weights: tuple[str, str] | None = None  # (model_weights, the first recording that names them)
    rows: dict[str, list[tuple[int, dict]]] = {}
    for i, name in enumerate(names):
        r = recordings[name]
        if r.get("_meta", {}).get("world") != world:
            raise ValueError(f"{name}: world {r.get('_meta', {}).get('world')!r}, but {names[0]} is {world!r}: "
                             "pool recordings of one world")
        if r.get("_meta", {}).get("model"):
            key = model_key(r["_meta"]["model"])
            first_model = first_model or (key, name)
            if key != first_model[0]:
                raise ValueError(f"{name}: trained from the model {key}, but {first_model[1]} from "
                                 f"{first_model[0]}: pool recordings of one base")
        weights = r.get("_meta", {}).get("model_weights")
        if weights and first_weights:  # the weights settle it: a shipped build and its bit-identical rebuild agree
            if weights != first_weights[0]:
                raise ValueError(f"{name}: trained from a base with the weights {weights}, but {first_weights[1]} "
                                 f"from {first_weights[0]}: pool recordings of one build of the base")
        elif r.get("_meta", {}).get("model_build"):  # one cache key built twice (another CPU): two bases
            first_build = first_build or (r["_meta"]["model_build"], name)
            if r["_meta"]["model_build"] != first_build[0]:
                raise ValueError(f"{name}: trained from the build {r['_meta']['model_build']}, but {first_build[1]} "
                                 f"from {first_build[0]}: pool recordings of one build of the base")
        if weights:
            first_weights = first_weights or (weights, name)
        for m, row in r.items():
            if m.startswith("_"):
                continue
            if m in rows and rows[m][0][1]["n_problems"] != row["n_problems"]:
                raise ValueError(f"{name}: method {m!r} has {row['n_problems']} test episodes per seed, "
                                 f"{names[rows[m][0][0]]} {rows[m][0][1]['n_problems']}: pool equal evaluations")
            rows.setdefault(m, []).append((i, row))
    evals = dict.fromkeys(r.get("_meta", {}).get("eval", "not recorded") for r in recordings.values())
    pooled = {"_meta": {"world": world, "pooled": names, "eval": " / ".join(evals)}}
    for m, parts in rows.items():
        keys = [k for k, v in parts[0][1].items() if isinstance(v, dict) and "per_seed" in v
                and all(isinstance(r.get(k), dict) for _, r in parts)]
        pooled[m] = {k: mean_std([x for _, r in parts for x in r[k]["per_seed"]]) for k in keys}
        pooled[m]["seeds"] = [f"{i}:{s}" for i, r in parts
                              for s in r.get("seeds", range(len(r["delta"]["per_seed"])))]
        pooled[m]["n_problems"] = parts[0][1]["n_problems"]
        if {"delta", "delta_i2c", "delta_c2i"} <= set(keys):  # for the pooled table; the check computes the same
            pooled[m]["delta_stderr"] = delta_se(pooled[m], pooled[m]["n_problems"] * len(pooled[m]["seeds"]))
    pooled["_meta"]["seeds"] = max(len(r["seeds"]) for m, r in pooled.items() if m != "_meta")
    return pooled


def rules_from(overrides: list[str]) -> Rules:
    """Rules from KEY=VALUE strings; an unknown key or a value that is not a positive number is refused by name."""
    names = {f.name for f in fields(Rules)}
    values = {}
    for o in overrides:
        key, sep, raw = o.partition("=")
        if not sep or key not in names:
            raise ValueError(f"findings rule {o!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(names))}")
        try:
            values[key] = float(raw)
        except ValueError:
            raise ValueError(f"findings rule {key!r}: expected a number, got {raw!r}") from None
        if values[key] <= 0:
            raise ValueError(f"findings rule {key!r}: expected a positive number, got {raw!r}")
    return Rules(**values)
