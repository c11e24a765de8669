"""Offline repair evaluation (MBPP-R style): input checks, episode building, grading, metrics."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from score_lib import cli, repair, sandbox
from score_lib.config import CODE_INSTRUCTION, ConfigError, build_config
from score_lib.episodes import Attempt, Episode
from score_lib.evaluate import JSON_KEYS
from score_lib.policy import save_policy, toy_model, toy_tokenizer
from score_lib.tasks.code import MBPPTask
from score_lib.tasks.toy import ToyTask



def wrong(p) -> str:
    """The reference solution with its final answer off by one: a known-wrong toy attempt."""
    return p.solution.rsplit("#", 1)[0] + f"#{int(p.answer) + 1}"


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(autouse=True)
def keep_sigterm():
    """cli.main installs its SIGTERM handler; give pytest its own back."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.fixture(scope="module")
def model_args(tmp_path_factory) -> list[str]:
    """An untrained one-layer toy model: these tests exercise the repair path, not a model's skill,
    and the session's trained tiny base takes over a minute to build on busy cores."""
    path = tmp_path_factory.mktemp("untrained-toy")
    tok = toy_tokenizer()
    save_policy(toy_model(tok, hidden=32, layers=1, heads=2), tok, path)
    return ["--model", str(path), "--set", "max_new_tokens=24"]


@pytest.fixture(scope="module")
def toy():
    return ToyTask(n_train=64, n_test=64)


@pytest.mark.parametrize("rows, where, field", [
    (['{"id": "1+2", "first": "x"', ], ":1:", "invalid JSON"),
    ([{"id": "a"}, ], ":1:", "missing field 'first'"),
    (["", {"first": "x"}], ":2:", "missing field 'id'"),
    ([{"id": 3, "first": "x"}], ":1:", "field 'id' must be a string"),
    (["[1, 2]"], ":1:", "expected an object"),
    ([{"id": "nope", "first": "x"}], ":1:", "field 'id': 'nope' is not a problem of task toy "
                                            "(splits searched: test, train; ids look like"),
])
def test_bad_lines_name_file_line_and_field(toy, tmp_path, rows, where, field):
    path = write_jsonl(tmp_path / "firsts.jsonl", rows)
    with pytest.raises(ConfigError) as err:
        repair.read_first_attempts(path, toy)
    assert f"{path}{where}" in str(err.value) and field in str(err.value)


def test_duplicates_unknown_split_and_empty_file(toy, tmp_path):
    p = toy.problems("test", 1)[0]
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": p.id, "first": "a"}, "", {"id": p.id, "first": "b"}])
    with pytest.raises(ConfigError, match=rf"dup.jsonl:3: field 'id': duplicate id .* \(also on line 1\)"):
        repair.read_first_attempts(dup, toy)
    one = write_jsonl(tmp_path / "one.jsonl", [{"id": p.id, "first": "a"}])
    with pytest.raises(ConfigError, match="splits searched: train;"):  # only the split given is searched
        repair.read_first_attempts(one, toy, split="train")
    with pytest.raises(ConfigError, match="--split validation"):
        repair.read_first_attempts(one, toy, split="validation")
    with pytest.raises(ConfigError, match="no first attempts"):
        repair.read_first_attempts(write_jsonl(tmp_path / "empty.jsonl", [""]), toy)
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        repair.read_first_attempts(tmp_path / "missing.jsonl", toy)


def test_cli_refuses_bad_input_in_one_line_before_loading_a_model(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "1+2+3+4", "first": "1+2=3;3+3=6;6+4=10#10"}, "{"])
    assert cli.main(["eval", "--repair", str(bad), "--model", "/nonexistent/model"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:2: invalid JSON" in lines[0]
    assert cli.main(["eval", "--only-wrong", "--model", "/nonexistent/model"]) == 2
    assert "--only-wrong goes with --write-first-attempts" in capsys.readouterr().err
    assert cli.main(["eval", "--split", "train", "--model", "/nonexistent/model"]) == 2
    assert "--split goes with --repair or --write-first-attempts" in capsys.readouterr().err


def test_toy_repair_end_to_end(model_args, tmp_path, capsys):
    probs = ToyTask(n_test=2000).problems("test", 6)  # the CLI's toy task: same problems, same ids
    rows = [{"id": p.id, "first": wrong(p) if i % 3 else p.solution} for i, p in enumerate(probs)]
    path = write_jsonl(tmp_path / "firsts.jsonl", rows)
    out = tmp_path / "repair.json"
    assert cli.main(["eval", "--repair", str(path), "--json", str(out), *model_args]) == 0
    m = json.loads(out.read_text())
    assert set(m) == set(JSON_KEYS) | set(repair.REPAIR_KEYS) | {"problems"}
    assert m["n_problems"] == 6 and m["method"] == f"repair {model_args[1]}"
    # the given attempts were graded: two right (the references), four wrong
    assert [o["correct"][0] for o in m["problems"]] == [i % 3 == 0 for i in range(6)]
    assert m["first_wrong_share"] == pytest.approx(4 / 6) == pytest.approx(1 - m["acc_t1"])
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"])
    assert m["repair_rate"] == pytest.approx(m["delta_i2c"] / (1 - m["acc_t1"]))
    assert m["break_rate"] == pytest.approx(m["delta_c2i"] / m["acc_t1"])
    assert m["acc_t2"] == pytest.approx(sum(o["correct"][1] for o in m["problems"]) / 6)
    printed = capsys.readouterr().out
    assert "repair n=6  first wrong 0.667" in printed and "Acc@t1 0.333" in printed
    assert cli.main(["eval", "--repair", str(path), "--limit", "2", "--json", str(out), *model_args]) == 0
    assert json.loads(out.read_text())["n_problems"] == 2


def test_write_first_attempts_round_trip(model_args, tmp_path):
    every, wrong_only = tmp_path / "all.jsonl", tmp_path / "wrong.jsonl"
    assert cli.main(["eval", "--write-first-attempts", str(every), "--limit", "6", *model_args]) == 0
    assert cli.main(["eval", "--write-first-attempts", str(wrong_only), "--only-wrong", "--limit", "6", *model_args]) == 0
    rows = [json.loads(line) for line in every.read_text().splitlines()]
    assert len(rows) == 6 and all(set(r) == {"id", "first", "correct"} for r in rows)
    assert wrong_only.read_text().splitlines() == [json.dumps(r) for r in rows if not r["correct"]]
    out = tmp_path / "repair.json"
    assert cli.main(["eval", "--repair", str(every), "--json", str(out), *model_args]) == 0
    # re-grading the written attempts as given attempts agrees with the grades written beside them
    assert [o["correct"][0] for o in json.loads(out.read_text())["problems"]] == [r["correct"] for r in rows]


# ---------------------------------------------------------------- MBPP: grading through the sandbox

@pytest.fixture(scope="module")
def mbpp() -> MBPPTask:
    data = Path(__file__).parents[2] / "shared" / "data"  # CI keeps ../shared beside the repo
    if not (data / "mbpp").is_dir():
        pytest.skip(f"shared benchmark data not found at {data}")
    return MBPPTask(data)


def test_mbpp_repair_grades_given_and_repaired_programs(mbpp, tmp_path, monkeypatch):
    monkeypatch.setenv(sandbox.ENV_ALLOW, "1")
    probs = mbpp.problems("test", 2)
    reference = [p.solution.removeprefix("```python\n").removesuffix("\n```") for p in probs]
    broken = reference[0].replace("return", "return None and", 1)  # known wrong, still compiles
    # line 1: a bare wrong program (wrapped as the policy writes programs); line 2: a fenced right one
    path = write_jsonl(tmp_path / "mbpp-r.jsonl", [{"id": probs[0].id, "first": broken},
                                                    {"id": probs[1].id, "first": probs[1].solution}])
    items = repair.read_first_attempts(path, mbpp, code=True)
    assert [p.id for p, _ in items] == [p.id for p in probs]
    assert items[0][1] == f"```python\n{broken}\n```" and items[1][1] == probs[1].solution

    def stub_model(model, tok, episodes, instruction, **kw):
        """A "model" whose second attempt is the reference program: repair succeeds, nothing breaks."""
        return [Episode(problem=e.problem, prompt_ids=e.prompt_ids, glue_ids=e.glue_ids + [[]],
                        attempts=[*e.attempts, Attempt(ids=[], text=e.problem.solution)]) for e in episodes]

    monkeypatch.setattr(repair, "continue_episodes", stub_model)
    cfg = build_config(None, {"task": "mbpp", "instruction": CODE_INSTRUCTION})
    m, episodes = repair.repair_eval(None, toy_tokenizer(), mbpp, cfg, items)
    assert [[a.correct for a in ep.attempts] for ep in episodes] == [[False, True], [True, True]]
    assert (m["first_wrong_share"], m["repair_rate"], m["break_rate"], m["acc_t2"]) == (0.5, 1.0, 0.0, 1.0)
    assert m["delta"] == pytest.approx(m["delta_i2c"] - m["delta_c2i"]) == pytest.approx(0.5)


def test_code_tasks_need_the_opt_in(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(sandbox.ENV_ALLOW, raising=False)
    monkeypatch.setattr(sandbox, "_allowed", False)
    path = write_jsonl(tmp_path / "f.jsonl", [{"id": "mbpp/11", "first": "def f(): pass"}])
    assert cli.main(["eval", "--task", "mbpp", "--repair", str(path), "--model", "/nonexistent/model"]) == 2
    assert "--allow-code-exec" in capsys.readouterr().err
