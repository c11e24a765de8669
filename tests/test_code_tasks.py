"""Code tasks: loaders over the shared data, reference solutions pass, extraction cases."""
from __future__ import annotations

from pathlib import Path

import pytest

from score_lib import sandbox
from score_lib.tasks import code
from score_lib.tasks.base import Problem
from score_lib.tasks.code import HumanEvalTask, MBPPTask, extract_program, repair_episodes_inputs


@pytest.fixture(scope="module")
def data_dir() -> Path:
    path = Path(__file__).parents[2] / "shared" / "data"  # CI keeps ../shared beside the repo
    if not (path / "humaneval").is_dir() or not (path / "mbpp").is_dir():
        pytest.skip(f"shared benchmark data not found at {path}")
    return path


@pytest.fixture(autouse=True)
def allow_exec(monkeypatch):
    monkeypatch.setenv(sandbox.ENV_ALLOW, "1")


def fenced(code_text: str) -> str:
    return f"Here is my solution.\n```python\n{code_text}\n```\nIt works."


def test_humaneval_loader(data_dir):
    task = HumanEvalTask(data_dir)
    probs = task.problems("test")
    assert len(probs) == 164 and probs[0].id == "HumanEval/0"
    p = probs[0]
    assert p.prompt.startswith("from typing import List") and "def has_close_elements" in p.prompt
    assert p.answer.rstrip().endswith("check(has_close_elements)")
    assert len(task.problems("test", limit=5)) == 5
    with pytest.raises(ValueError, match="only a test split"):
        task.problems("train")


def test_humaneval_canonical_solutions_pass_and_a_broken_one_fails(data_dir):
    task = HumanEvalTask(data_dir)
    probs = task.problems("test", limit=10)
    responses = [fenced(p.prompt + p.meta["canonical_solution"]) for p in probs]
    assert task.grade_many(responses, probs) == [1.0] * 10
    assert task.grade(responses[0], probs[0]) == 1.0
    # a body-only continuation (the completion style of the original benchmark) also passes
    assert task.grade(probs[1].meta["canonical_solution"], probs[1]) == 1.0
    assert task.grade(fenced("    return not True"), probs[0]) == 0.0
    assert task.grade("I do not know.", probs[0]) == 0.0


def test_mbpp_splits(data_dir):
    full = MBPPTask(data_dir)
    sizes = {s: len(full.problems(s)) for s in ("prompt", "test", "validation", "train")}
    assert sizes == {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    assert [p.meta["task_id"] for p in full.problems("train", limit=2)] == [601, 602]
    san = MBPPTask(data_dir, variant="sanitized")
    ids = {s: [p.meta["task_id"] for p in san.problems(s)] for s in ("prompt", "test", "validation", "train")}
    assert sum(map(len, ids.values())) == 427
    assert all(11 <= i <= 510 for i in ids["test"]) and all(601 <= i <= 974 for i in ids["train"])
    with pytest.raises(ValueError, match="split"):
        full.problems("dev")
    with pytest.raises(ValueError, match="variant"):
        MBPPTask(data_dir, variant="tiny")


def test_mbpp_prompt_and_answer(data_dir):
    p = MBPPTask(data_dir).problems("test", limit=1)[0]
    assert p.id == "mbpp/11" and "remove first and last occurrence" in p.prompt
    assert "assert remove_Occ(" in p.prompt  # one test, so the function name is known
    assert p.answer.count("assert") == 3 and "\r" not in p.answer
    setup = [q for q in MBPPTask(data_dir).problems("train") if q.meta["task_id"] == 927][0]
    assert setup.answer.startswith("root = Node(1)")  # test_setup_code comes before the asserts


@pytest.mark.parametrize("variant", ["full", "sanitized"])
def test_mbpp_reference_code_passes(data_dir, variant):
    task = MBPPTask(data_dir, variant=variant)
    probs = task.problems("test", limit=10)
    assert task.grade_many([p.solution for p in probs], probs) == [1.0] * 10
    wrong = probs[0].solution.replace("return", "return None and", 1)
    assert task.grade(wrong, probs[0]) == 0.0


def test_missing_data_names_the_path_and_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(code, "_package_humaneval", lambda: None)
    with pytest.raises(FileNotFoundError, match="--data-dir") as err:
        HumanEvalTask(tmp_path)
    assert str(tmp_path / "humaneval" / "HumanEval.jsonl.gz") in str(err.value)
    with pytest.raises(FileNotFoundError, match="mbpp.jsonl.*--data-dir"):
        MBPPTask(tmp_path)
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        MBPPTask(None, variant="sanitized")


def test_grading_needs_the_opt_in(data_dir, monkeypatch):
    monkeypatch.delenv(sandbox.ENV_ALLOW)
    monkeypatch.setattr(sandbox, "_allowed", False)
    task = MBPPTask(data_dir)
    p = task.problems("test", limit=1)[0]
    with pytest.raises(sandbox.CodeExecutionNotAllowed, match="--allow-code-exec"):
        task.grade(p.solution, p)


HE_PROMPT = 'from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    """Sum."""\n'
HE = Problem(id="he/x", prompt=HE_PROMPT, answer="assert add([1, 2]) == 3",
             meta={"entry_point": "add", "prompt": HE_PROMPT})


@pytest.mark.parametrize("response, expected", [
    ("```python\ndef f():\n    return 1\n```\nthen\n```python\ndef f():\n    return 2\n```",
     "def f():\n    return 2\n"),                                       # last python block
    ("```\nx = 1\n```\n```text\noutput: 1\n```", "x = 1\n"),           # untagged beats other tags
    ("```js\nlet x = 1;\n```", "let x = 1;\n"),                          # any block at all
    ("Sure:\n```python\ndef f():\n    return 3", "def f():\n    return 3\n"),  # cut-off block
    ("  ```python\n  def f():\n      return 4\n  ```", "def f():\n    return 4\n"),  # indented fence
    ("def f():\n    return 5\n", "def f():\n    return 5\n"),            # bare code
    ("import math\ndef f():\n    return math.pi\nThis returns pi.",
     "import math\ndef f():\n    return math.pi\n"),                     # bare code, prose after
    ("The answer is 42.", None),                                         # no code at all
    ("", None),
])
def test_extract_program(response, expected):
    assert extract_program(response) == expected


def test_extract_program_humaneval_repairs():
    body = "    return sum(xs)\n"
    assert extract_program(body, HE) == HE.meta["prompt"] + body         # continuation
    assert extract_program(fenced(body.rstrip()), HE) == HE.meta["prompt"] + body
    # full function without the prompt's typing import: the import is put in front
    full = "def add(xs: List[int]) -> int:\n    return sum(xs)"
    assert extract_program(fenced(full), HE) == "from typing import List\n" + full + "\n"
    assert extract_program("no idea, sorry", HE) is None


def test_humaneval_style_grading_of_repairs():
    task = code._CodeTask()
    assert task.grade(fenced("def add(xs: List[int]) -> int:\n    return sum(xs)"), HE) == 1.0
    assert task.grade("    return sum(xs)\n", HE) == 1.0
    assert task.grade("    return 0\n", HE) == 0.0


def test_repair_episodes_inputs():
    probs = [HE, Problem(id="y", prompt="Write g.", answer="assert g() == 1")]
    prompts, firsts = repair_episodes_inputs(probs, ["def add(xs):\n    return 0\n", "def g(): return 2"])
    assert prompts == [HE.prompt, "Write g."]
    assert firsts[1] == "```python\ndef g(): return 2\n```"
    assert extract_program(firsts[0], HE) == "from typing import List\ndef add(xs):\n    return 0\n"
    with pytest.raises(ValueError):
        repair_episodes_inputs(probs, ["x"])
