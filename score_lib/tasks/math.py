"""Math tasks (GSM8K, MATH, MATH500): loaders through `datasets` and a math-verify oracle.

Data comes from local JSONL files when `data_dir` is given (a folder holding gsm8k/, math/ and
math500/ as /work/shared/data does) and from the Hugging Face hub otherwise.

The oracle extracts the answer a response commits to (the last \\boxed{...}, else a "final answer"
line, else GSM8K's "#### X") and compares it with the gold answer using math-verify, gold first.
math-verify's own timeouts use SIGALRM, which raises outside the main thread, so they are turned
off and every check runs in a short-lived daemon thread that the caller waits on until the
thread has used `CHECK_TIMEOUT` seconds of CPU (or `CHECK_WALL_LIMIT` seconds have passed); a check
that runs over counts as wrong. CPU time, not wall time, so that a loaded machine does not turn
right answers into wrong ones (on 2 busy cores a 0.2 s check ran past 2 s of wall time). A thread
cannot be killed, and a computation that holds the GIL (Python's big-integer power, for one)
cannot even be waited out, so answers whose numbers would have more than `MAX_DIGITS` digits
(10^{10^{10}}, (10^{100})!) are rejected before sympy sees them.

What counts as right (tests/math_regression.jsonl holds the cases): equal values in any notation
(0.5 = \\frac12, \\sqrt8 = 2\\sqrt2, x=3 for 3); a percent sign is optional and 50\\% also equals
0.5, but a bare gold 50 is not 0.5; unit words are ignored (so 5 cm passes for 5 m: a recorded
limitation, as are repeating decimals and e^{i\\pi} = -1, which math-verify cannot judge).
"""
from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from pathlib import Path

from .base import Problem

log = logging.getLogger(__name__)

INSTRUCTION = "Work through it step by step, then write the final answer inside \\boxed{}."
CHECK_TIMEOUT = 2.0
"""CPU seconds one answer check may use before it counts as wrong."""
CHECK_WALL_LIMIT = 20.0
"""Wall-clock cap per check, for a check that waits rather than computes."""
MAX_ANSWER_CHARS = 1000
"""Longer "answers" are rambling, not answers; they also keep regexes and sympy bounded."""
MAX_DIGITS = 100_000
"""Numbers larger than 10^MAX_DIGITS are never a competition answer and would stall sympy."""
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")


# ----------------------------------------------------------------------------- answer extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b\s*")
_FINAL_RE = re.compile(r"^.*\b(?:final\s+answer|answer)\s*(?:is\s*:?|:|=)\s*(.*)$", re.IGNORECASE)
_HASH_RE = re.compile(r"####\s*(.*)")


def _braced(text: str, i: int) -> str | None:
    """Contents of the brace group opening at text[i], or None when it never closes.

    Escaped braces (\\{ \\}) are content, not grouping, so \\boxed{\\{1,2\\}} gives \\{1,2\\}.
    """
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
        j += 1
    return None


def last_boxed(text: str) -> str | None:
    """Contents of the last non-empty, closed \\boxed{...} or \\fbox{...} (also \\boxed 5)."""
    for m in reversed(list(_BOX_RE.finditer(text))):
        i = m.end()
        if i < len(text) and text[i] == "{":
            inner = _braced(text, i)
        else:  # "\boxed 5": one token, as some models write it
            tok = re.match(r"[^\s$]+", text[i:])
            inner = tok.group(0) if tok else None
        if inner and inner.strip():
            return inner.strip()
    return None


def _clean(ans: str) -> str | None:
    """An answer written in running text, without its maths delimiters and closing words."""
    ans = re.sub(r"\\(?:boxed|fbox)\s*\{\s*\}", "", ans.replace("**", "")).strip()  # "is \boxed{}."
    ans = re.split(r"\s*I hope it is correct", ans)[0]
    m = re.search(r"\$+([^$]+)\$+|\\\((.+?)\\\)|\\\[(.+?)\\\]", ans)
    if m:  # the maths part of "$5$ dollars" or "\(x=3\)."
        ans = next(g for g in m.groups() if g is not None)
    ans = re.split(r"\.\s+(?=[A-Z])", ans)[0]  # "5. So we are done." -> "5"
    ans = ans.strip().rstrip(".").strip()
    return ans or None


def extract_answer(response: str) -> str | None:
    """The answer a response commits to: last \\boxed{}, else a final-answer line, else "#### X".

    Returns None when the response commits to nothing (no fallback to "the last number": a
    response that never states an answer earns no reward).
    """
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    lines = response.splitlines()
    for k in range(len(lines) - 1, -1, -1):
        m = _FINAL_RE.match(lines[k])
        if m:
            rest = m.group(1)
            if not rest.strip("*: ") and k + 1 < len(lines):  # "Final answer:\n5"
                rest = lines[k + 1]
            found = _clean(rest)
            if found:
                return found
    hashes = _HASH_RE.findall(response)
    if hashes:
        return _clean(hashes[-1])
    return None


# ----------------------------------------------------------------------------- math-verify oracle

class _TooBig(Exception):
    pass


def _log10(e) -> float | None:
    """Rough log10 |e| of a numeric sympy tree (None when symbolic); raises _TooBig on giants.

    Only magnitudes are tracked, never values, so the estimate itself cannot blow up.
    """
    import sympy

    if isinstance(e, sympy.MatrixBase):
        for x in e:
            _log10(x)
        return None
    if not isinstance(e, sympy.Basic):
        return None
    if e.is_Number:
        if e.is_zero:
            return -math.inf
        if e.is_Rational:
            return math.log10(abs(int(e.p))) - math.log10(int(e.q))
        return math.log10(abs(float(e))) if e.is_finite else None
    kids = [_log10(a) for a in e.args]  # checks every subtree, numeric or not
    if any(k is None for k in kids) or not kids:
        return None
    if isinstance(e, sympy.Pow):
        base, exp = kids
        size = 10 ** min(exp, 300) * abs(base) if base != -math.inf else 0.0
        if size > MAX_DIGITS:
            raise _TooBig(str(e)[:60])
        return size
    if isinstance(e, (sympy.factorial, sympy.factorial2, sympy.gamma)):
        n = 10 ** min(kids[0], 300)
        if n * math.log10(max(n, 2)) > MAX_DIGITS:
            raise _TooBig(str(e)[:60])
        return n * math.log10(max(n, 2))
    if isinstance(e, sympy.Mul):
        return sum(kids)
    return max(kids) + 1


@functools.lru_cache(maxsize=1)
def _warm_up() -> None:
    """Import math-verify and parse once in the caller's thread.

    The first check pays about 1 s of imports and grammar set-up; inside the timed worker that
    could push an ordinary first answer past CHECK_TIMEOUT and grade it wrong.
    """
    import math_verify.grader
    import math_verify.parser

    # we time checks ourselves, so math-verify's one-time "timeout is disabled" warning is noise
    for mod in (math_verify.grader, math_verify.parser):
        if hasattr(mod, "TIMEOUT_WARNING_SHOWN"):
            mod.TIMEOUT_WARNING_SHOWN = True
    _parse("1")


@functools.lru_cache(maxsize=8192)
def _parse(text: str) -> tuple:
    """math-verify's parse of a boxed answer, SIGALRM timeout off (we time checks ourselves)."""
    from math_verify import parse

    return tuple(parse(f"\\boxed{{{text}}}", parsing_timeout=None))


def _verify(pred: str, gold: str) -> bool:
    from math_verify import verify

    g, p = _parse(gold), _parse(pred)
    if not g or not p:
        return False
    try:
        for x in p:
            _log10(x)
    except _TooBig as big:
        log.info("answer rejected, too large to check: %s", big)
        return False
    return bool(verify(list(g), list(p), timeout_seconds=None))


_LEAKED: list[threading.Thread] = []


def _thread_cpu(t: threading.Thread) -> float | None:
    """CPU seconds thread `t` has used (None where the platform cannot tell)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(t.ident))
    except Exception:  # not Linux/BSD, or the thread just ended
        return None


def _run_with_timeout(fn, args: tuple, timeout: float, wall_limit: float = CHECK_WALL_LIMIT):
    """fn(*args) in a daemon thread; None when it uses more than `timeout` CPU seconds.

    A fresh daemon thread per call (not a pool): a check that hangs is left behind without
    blocking later checks or interpreter exit. Where thread CPU time is unknown, `timeout` is wall
    time; `wall_limit` caps the wait either way.
    """
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except Exception as err:  # a checker crash is a wrong answer, not a crashed rollout
            box["error"] = err

    t = threading.Thread(target=target, name="math-check", daemon=True)
    start = time.monotonic()
    t.start()
    while True:
        t.join(min(0.05, timeout))  # returns at once when the check ends
        if not t.is_alive():
            break
        wall = time.monotonic() - start
        cpu = _thread_cpu(t)
        if (wall if cpu is None else cpu) > timeout or wall > wall_limit:
            _LEAKED.append(t)
            _LEAKED[:] = [x for x in _LEAKED if x.is_alive()]
            log.warning("math check of %r gave up after %.1fs (cpu %s; %d still running)",
                        args[0][:80], wall, "?" if cpu is None else f"{cpu:.1f}s", len(_LEAKED))
            return None
    if "error" in box:
        log.debug("math check of %r failed: %r", args[0][:80], box["error"])
        return None
    return box.get("value")


def answers_match(pred: str, gold: str, timeout: float = CHECK_TIMEOUT) -> bool:
    """math-verify equivalence of an extracted answer and the gold answer (gold first)."""
    if not pred or len(pred) > MAX_ANSWER_CHARS:
        return False
    _warm_up()
    return bool(_run_with_timeout(_verify, (pred, gold), timeout))


def is_correct(response: str, gold: str) -> bool:
    """True when the answer `response` commits to is mathematically equal to `gold`.

    Safe in any thread; a check gets CHECK_TIMEOUT CPU seconds, then counts as wrong.
    """
    pred = extract_answer(response)
    return pred is not None and answers_match(pred, gold)


# ----------------------------------------------------------------------------- string match

_UNITS = set("cm m km mm in inch inches ft foot feet yard yards mile miles meter meters metre metres "
             "unit units square sq cubic degree degrees dollar dollars cent cents hour hours minute "
             "minutes second seconds day days week weeks year years mph kg g pound pounds lb lbs".split())


def _normalise(s: str) -> str:
    s = s.strip()
    inner = last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
    s = inner or s
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox|textnormal)\s*\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\left|\\right|\\[!,;: ]|~|\$|\\\$|\\%|%|\^\s*\{?\\circ\}?|\\circ", " ", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    s = s.strip().rstrip(".").strip()
    words = s.split()
    while len(words) > 1 and words[-1].lower().rstrip(".^23") in _UNITS:  # "5 cm" -> "5"
        words.pop()
    s = "".join(words)
    s = re.sub(r"^[a-zA-Z]=(?=[^=]+$)", "", s)  # "x=3" -> "3"
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):  # thousands separators, not tuples
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d*\.\d+", s):  # "3.50" -> "3.5", "3.0" -> "3", ".5" -> "0.5"
        s = s.rstrip("0").rstrip(".")
        s = re.sub(r"^(-?)\.", r"\g<1>0.", s) or "0"
    m = re.fullmatch(r"\(([A-Ea-e])\)", s)  # multiple choice "(C)" -> "C"
    if m:
        s = m.group(1)
    return s.lower() if s.isalpha() else s


def string_match(pred: str | None, gold: str) -> bool:
    """Conservative normalised string equality (a cross-check reported beside math-verify).

    Strips notation that never changes the value ($, spaces, \\left/\\right, \\text{}, degree and
    percent signs, trailing unit words, thousands commas, "x=" prefixes, trailing zeros after a
    decimal point) and compares what is left. It never does arithmetic: 0.5 and \\frac12 differ.
    """
    return pred is not None and bool(pred.strip()) and _normalise(pred) == _normalise(gold)


def grade_details(response: str, gold: str) -> dict:
    """The extracted answer and both judgements, for traces and grader audits."""
    pred = extract_answer(response)
    return {"answer": pred,
            "math_verify": pred is not None and answers_match(pred, gold),
            "string_match": string_match(pred, gold)}


# ----------------------------------------------------------------------------- loaders

def _load(data_dir, local: str, hub: tuple, split: str) -> list[dict]:
    """Records of a local JSONL file under data_dir, or of a hub dataset when data_dir is None."""
    from datasets import load_dataset

    if data_dir is not None:
        path = Path(data_dir) / local
        if not path.exists():
            raise FileNotFoundError(f"math data: {path} not found (data_dir={data_dir})")
        return list(load_dataset("json", data_files=str(path), split="train"))
    name, *config = hub
    try:
        return list(load_dataset(name, *config, split=split))
    except Exception as err:
        raise RuntimeError(f"math data: cannot load {name} {config} [{split}] from the hub ({err}); "
                           "offline, pass data_dir= a folder holding gsm8k/, math/, math500/") from err


def _level(value) -> int | None:
    if isinstance(value, int):
        return value
    m = re.search(r"\d+", str(value or ""))
    return int(m.group(0)) if m else None


def _prompt(question: str) -> str:
    return f"{question.strip()}\n\n{INSTRUCTION}"


class _MathTask:
    """What every math task shares: the data source, the split cache and the oracle."""

    name = "math"

    def __init__(self, data_dir: str | Path | None = None):
        self.data_dir = data_dir
        self._cache: dict[str, list[Problem]] = {}

    def extract_answer(self, response: str) -> str | None:
        return extract_answer(response)

    def grade(self, response: str, problem: Problem) -> float:
        return float(is_correct(response, problem.answer))

    def problems(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in ("train", "test"):
            raise ValueError(f"{self.name}: split must be 'train' or 'test', got {split!r}")
        if split not in self._cache:
            self._cache[split] = self._load(split)
        probs = self._cache[split]
        return probs if limit is None else probs[:limit]


class GSM8KTask(_MathTask):
    """GSM8K (train 7,473 / test 1,319); gold = the text after "#### " without commas."""

    name = "gsm8k"

    def _load(self, split: str) -> list[Problem]:
        rows = _load(self.data_dir, f"gsm8k/{split}.jsonl", ("openai/gsm8k", "main"), split)
        out = []
        for i, r in enumerate(rows):
            work, _, gold = r["answer"].rpartition("####")
            gold = gold.strip().replace(",", "")
            # the SFT reference: calculator annotations <<...>> removed, the answer boxed as we ask
            steps = re.sub(r"<<[^>]*>>", "", work).strip()
            out.append(Problem(id=f"gsm8k/{split}/{i}", prompt=_prompt(r["question"]), answer=gold,
                               solution=f"{steps}\nThe final answer is \\boxed{{{gold}}}."))
        return out


def _math_problem(r: dict, pid: str) -> Problem | None:
    gold = last_boxed(r["solution"])
    if gold is None:  # a handful of MATH solutions state no boxed answer; nothing to grade
        return None
    return Problem(id=pid, prompt=_prompt(r["problem"]), answer=gold, solution=r["solution"],
                   meta={"level": _level(r["level"]), "subject": r["type"]})


class MATH500Task(_MathTask):
    """MATH500 (Lightman et al.), the paper's MATH evaluation set: test only, 500 problems."""

    name = "math500"

    def _load(self, split: str) -> list[Problem]:
        if split != "test":
            raise ValueError("math500: only a 'test' split exists (train with the 'math' task)")
        rows = _load(self.data_dir, "math500/test.jsonl", ("HuggingFaceH4/MATH-500",), "test")
        return [Problem(id=r.get("unique_id") or f"math500/test/{i}", prompt=_prompt(r["problem"]),
                        answer=r["answer"], solution=r["solution"],
                        meta={"level": _level(r["level"]), "subject": r["subject"]})
                for i, r in enumerate(rows)]


class MATHTask(_MathTask):
    """MATH as the paper uses it: test = MATH500; train = MATH train + MATH test outside MATH500.

    From the hub (no data_dir) train is the 7,500-problem MATH train split plus the 4,500 MATH test
    problems outside MATH500. From a local data_dir train is math/train.jsonl when present plus
    those 4,500 from math/test.jsonl; the offline copy has no train split, so there train is the
    4,500 alone. MATH500 is removed by problem text, so no evaluation problem can leak into train.
    Gold answers of the non-MATH500 problems are the last \\boxed{} of their reference solutions.
    """

    name = "math"

    def __init__(self, data_dir: str | Path | None = None):
        super().__init__(data_dir)
        self._math500 = MATH500Task(data_dir)

    def _load(self, split: str) -> list[Problem]:
        if split == "test":
            return self._math500.problems("test")
        held_out = {p.prompt for p in self._math500.problems("test")}
        out: list[Problem] = []
        if self.data_dir is not None:
            sources = [("test", _load(self.data_dir, "math/test.jsonl", (), "test"))]
            if (Path(self.data_dir) / "math/train.jsonl").exists():
                sources.insert(0, ("train", _load(self.data_dir, "math/train.jsonl", (), "train")))
        else:
            sources = []
            for part in ("train", "test"):
                rows = [r for s in MATH_SUBJECTS
                        for r in _load(None, "", ("EleutherAI/hendrycks_math", s), part)]
                sources.append((part, rows))
        for part, rows in sources:
            for i, r in enumerate(rows):
                p = _math_problem(r, f"math/{part}/{r.get('idx', i)}")
                if p is not None and not (part == "test" and p.prompt in held_out):
                    out.append(p)
        return out
