"""The findings check: each claim of issue 3 flips with the numbers that decide it, and no other way."""
import json

import pytest

from score_lib import findings as F
from score_lib.metrics import mean_std

N = 1024  # test episodes per seed


def row(acc_t1=0.7, i2c=0.05, c2i=0.05, change=0.3, unchanged=0.4, right=None, wrong=None):
    """An aggregated ablation row; each argument is one value for every seed or a list of per-seed values."""
    def ms(x):
        return mean_std(x if isinstance(x, list) else [x] * 3)
    i2c_s, c2i_s = (x if isinstance(x, list) else [x] * 3 for x in (i2c, c2i))
    r = {"acc_t1": ms(acc_t1), "delta_i2c": ms(i2c_s), "delta_c2i": ms(c2i_s),
         "delta": ms([a - b for a, b in zip(i2c_s, c2i_s)]), "answer_change_rate": ms(change),
         "edit_ratio_zero_share": ms(unchanged), "n_problems": N}
    if right is not None:
        r["answer_change_if_right"], r["answer_change_if_wrong"] = ms(right), ms(wrong)
    return r


def paper_like():
    """Every finding holds by a wide margin."""
    return {
        "base": row(acc_t1=0.6, i2c=0.04, c2i=0.16, change=0.40, unchanged=0.30, right=0.3, wrong=0.55),
        "star-plus": row(acc_t1=0.62, i2c=0.03, c2i=0.03, unchanged=0.70),
        "pair-sft-plus": row(acc_t1=0.62, i2c=0.02, c2i=0.025, unchanged=0.80),
        "st-rl": row(acc_t1=0.80, i2c=0.02, c2i=0.10),
        "mt-rl": row(acc_t1=0.72, i2c=0.01, c2i=0.015, change=0.05, right=0.02, wrong=0.10),
        "no-stage1": row(acc_t1=0.70, i2c=0.05, c2i=0.03),
        "no-shaping": row(acc_t1=0.70, i2c=0.05, c2i=0.035),
        "score": row(acc_t1=0.69, i2c=[0.09, 0.10, 0.11], c2i=0.01),
    }


def verdicts(results, **rules):
    return {f.number: f.verdict for f in F.check(results, F.Rules(**rules))}


def statuses(results, number):
    return [c.status for c in F.check(results)[number - 1].claims]


def test_every_finding_holds_on_a_paper_like_table():
    assert verdicts(paper_like()) == {1: "yes", 2: "yes", 3: "yes", 4: "yes", 5: "yes"}


def test_base_delta_sign_and_its_standard_error_decide_finding_1():
    r = paper_like()
    r["base"] = row(i2c=0.10, c2i=0.04)
    assert statuses(r, 1) == ["no"]
    r["base"] = row(i2c=[0.06, 0.03, 0.05], c2i=[0.05, 0.06, 0.04])  # mean -0.003, seeds +0.01, -0.03, +0.01
    assert statuses(r, 1) == ["tie"]


def test_single_turn_rl_must_lead_every_rl_method_in_acc_t1():
    r = paper_like()
    r["no-shaping"]["acc_t1"] = mean_std([0.85] * 3)  # another RL row is clearly ahead
    assert statuses(r, 2) == ["no", "yes"]
    r["no-shaping"]["acc_t1"] = mean_std([0.78, 0.80, 0.83])  # level: ahead in one seed, behind in another
    assert statuses(r, 2)[0] == "tie"
    r["star-plus"]["acc_t1"] = mean_std([0.95] * 3)  # SFT rows are not in the ranking
    assert statuses(r, 2)[0] == "tie"


def test_answer_change_fraction_and_delta_near_zero_decide_finding_3():
    r = paper_like()
    r["mt-rl"]["answer_change_rate"] = mean_std([0.20] * 3)  # half the base's 0.40: fell, not to a small fraction
    assert statuses(r, 3)[0] == "partly"
    assert verdicts(r, small_fraction=0.5)[3] == "yes"  # the rule is the user's to set
    r["mt-rl"]["answer_change_rate"] = mean_std([0.41] * 3)
    assert statuses(r, 3)[0] == "no"
    r["mt-rl"] = row(i2c=0.01, c2i=0.06, change=0.05)  # Delta -0.05: beyond a quarter of the base's -0.12
    assert statuses(r, 3)[1] == "no"


def test_collapse_needs_a_clearly_larger_unchanged_share_finding_4():
    r = paper_like()
    r["star-plus"]["edit_ratio_zero_share"] = mean_std([0.36] * 3)  # above the base's 0.30, under 1.5x
    assert statuses(r, 4) == ["partly", "yes", "yes", "yes"]
    r["star-plus"]["edit_ratio_zero_share"] = mean_std([0.30] * 3)
    assert statuses(r, 4)[0] == "no"
    assert verdicts(r)[4] == "in part"


def test_score_claims_finding_5():
    r = paper_like()
    r["score"] = row(i2c=[0.09, 0.10, 0.005], c2i=0.01)  # one seed below zero
    assert statuses(r, 5)[1] == "partly"
    r = paper_like()
    r["no-stage1"] = row(i2c=0.05, c2i=[0.005, 0.012, 0.007])  # lower than SCoRe's 0.01 by less than one SE
    assert statuses(r, 5)[2] == "tie"
    r["no-stage1"] = row(i2c=0.05, c2i=0.004)  # ... and by more
    assert statuses(r, 5)[2] == "no"
    r["no-stage1"] = row(i2c=0.12, c2i=0.02)  # a clearly larger Delta than SCoRe's
    assert statuses(r, 5)[0] == "no" and statuses(r, 5)[3] == "no" and statuses(r, 5)[4] == "yes"


def test_differences_are_paired_by_seed_and_one_seed_falls_back_to_sampling_error():
    a = row(i2c=[0.10, 0.20, 0.30], c2i=0.0)
    b = row(i2c=[0.09, 0.19, 0.29], c2i=0.0)
    d, se = F.diff_se({"a": a, "b": b}, "a", "b", "delta")
    assert d == pytest.approx(0.01) and se == pytest.approx(0.0, abs=1e-12)  # +0.01 in every seed: no doubt
    b = row(i2c=[0.29, 0.19, 0.09], c2i=0.0)  # the same means, seeds that disagree: their spread decides
    d, se = F.diff_se({"a": a, "b": b}, "a", "b", "delta")
    assert d == pytest.approx(0.01) and se == pytest.approx(mean_std([-0.19, 0.01, 0.21])["std"] / 3 ** 0.5)
    # one seed each: the two evaluations' sampling errors (Delta's from its flips: (i2c + c2i - Delta^2) / n)
    one = {k: {**v, **{m: mean_std(v[m]["per_seed"][:1]) for m in v if isinstance(v[m], dict)}}
           for k, v in {"a": a, "b": b}.items()}
    d, se = F.diff_se(one, "a", "b", "delta")
    assert d == pytest.approx(0.10 - 0.29)
    assert se == pytest.approx(((0.10 - 0.01) / N + (0.29 - 0.29 ** 2) / N) ** 0.5)


def test_missing_methods_are_not_run_and_do_not_decide_a_verdict():
    r = {k: v for k, v in paper_like().items() if k in ("mt-rl", "score")}
    found = F.check(r)
    assert [f.verdict for f in found[:4]] == ["not run"] * 4
    assert [c.status for c in found[4].claims] == ["yes", "yes", "yes", "not run", "not run"]
    assert found[4].verdict == "yes" and found[4].tally == "yes (3 of 3 hold)"


def test_markdown_has_one_row_per_claim_and_no_stray_cell_separators():
    found = F.check(paper_like())
    md = F.markdown(found)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| finding")]
    assert len(rows) == sum(len(f.claims) for f in found)
    assert all(ln.count("|") == 6 for ln in rows)
    assert "small_fraction 0.25" in md


def test_json_and_rules_refusals(tmp_path):
    doc = F.as_json(F.check(paper_like()), F.Rules(near_zero=0.3))
    assert doc["rules"]["near_zero"] == 0.3 and [f["verdict"] for f in doc["findings"]] == ["yes"] * 5
    with pytest.raises(ValueError, match="near_zero"):
        F.rules_from(["near_zero=0"])
    with pytest.raises(ValueError, match="one of"):
        F.rules_from(["gap=1"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"score": {"acc_t1": 0.5}}))
    with pytest.raises(ValueError, match=r"bad.json: method 'score': field 'acc_t1'"):
        F.load(bad)
    bad.write_text(json.dumps({"scor": {}}))
    with pytest.raises(ValueError, match="unknown method 'scor'"):
        F.load(bad)


def test_scorecard_has_one_row_per_ablation_with_each_findings_tally():
    good, bad = paper_like(), paper_like()
    bad["score"] = row(i2c=0.01, c2i=0.05)
    card = F.scorecard({"good.json": (good, F.check(good)), "bad.json": (bad, F.check(bad))}).splitlines()
    assert card[2].endswith("| yes | yes | yes | yes | yes |")
    assert card[3].startswith("| bad.json |") and card[3].split(" | ")[-1].startswith("no (0 of 5 hold)")


def test_pool_puts_each_methods_seeds_side_by_side_and_keeps_them_paired():
    a, b = paper_like(), paper_like()
    b["score"] = row(acc_t1=0.69, i2c=[0.02, 0.03, 0.04], c2i=0.05)  # negative in the second recording
    for r in (a, b):
        r["_meta"] = {"world": "toy"}
    pooled = F.pool({"a.json": a, "b.json": b})
    assert pooled["score"]["delta"]["per_seed"] == pytest.approx([0.08, 0.09, 0.10, -0.03, -0.02, -0.01])
    assert pooled["score"]["seeds"] == ["0:0", "0:1", "0:2", "1:0", "1:1", "1:2"] == pooled["base"]["seeds"]
    assert F.paired(pooled, "score", "base", "delta") and pooled["_meta"]["pooled"] == ["a.json", "b.json"]
    assert verdicts(a)[5] == "yes" and statuses(pooled, 5)[1] == "partly"  # Delta > 0 in 3 of 6 seeds
    b["_meta"]["world"] = "toy-hard"
    with pytest.raises(ValueError, match="b.json: world 'toy-hard'"):
        F.pool({"a.json": a, "b.json": b})
    b["_meta"]["world"], b["mt-rl"]["n_problems"] = "toy", 512
    with pytest.raises(ValueError, match="b.json: method 'mt-rl' has 512 test episodes"):
        F.pool({"a.json": a, "b.json": b})
    # two bases (by cache key) are refused; a recording without `_meta.model` (older ones) is not checked
    b["mt-rl"]["n_problems"] = a["mt-rl"]["n_problems"]
    a["_meta"]["model"], b["_meta"]["model"] = "/cache/toy-base/8bf629a21f", "/elsewhere/8bf629a21f"
    assert F.pool({"a.json": a, "b.json": b, "c.json": paper_like() | {"_meta": {"world": "toy"}}})
    b["_meta"]["model"] = "/cache/toy-base/a34e1fb78a"
    with pytest.raises(ValueError, match="b.json: trained from the model a34e1fb78a, but a.json from 8bf629a21f"):
        F.pool({"a.json": a, "b.json": b})
    # the same key built twice (another CPU stopped the build elsewhere) is refused where both record the build
    b["_meta"]["model"] = a["_meta"]["model"]
    a["_meta"]["model_build"], b["_meta"]["model_build"] = "8bf629a21f (2000 steps)", "8bf629a21f (1700 steps)"
    with pytest.raises(ValueError, match=r"b.json: trained from the build 8bf629a21f \(1700 steps\), but a.json"):
        F.pool({"a.json": a, "b.json": b})
    del b["_meta"]["model_build"]  # an older recording: its key agrees, its build is not known
    assert F.pool({"a.json": a, "b.json": b})
    # where both record the weights, they decide: the shipped build and a bit-identical rebuild are one base
    a["_meta"]["model_build"], b["_meta"]["model_build"] = "8bf629a21f (2000 steps, shipped)", "8bf629a21f (2000 steps)"
    a["_meta"]["model_weights"] = b["_meta"]["model_weights"] = "0123456789abcdef"
    assert F.pool({"a.json": a, "b.json": b})
    b["_meta"]["model_weights"] = "fedcba9876543210"  # the same steps, other weights (another CPU's rounding)
    b["_meta"]["model_build"] = a["_meta"]["model_build"]
    with pytest.raises(ValueError, match="b.json: trained from a base with the weights fedcba9876543210, but a.json"):
        F.pool({"a.json": a, "b.json": b})



def test_score_findings_pool_prints_the_pooled_table_then_the_same_check(tmp_path, capsys):
    """The pooled table exists in no file: `score findings --pool` prints it (each row over the seeds of every
    file that has it, Delta's SE over all their episodes), then the findings of the pooled rows."""
    from score_lib import ablation_table, cli

    a, b = paper_like(), paper_like()
    b["score"] = row(acc_t1=0.69, i2c=[0.02, 0.03, 0.04], c2i=0.05)
    del b["st-rl"]  # a later batch of seeds of some rows only
    for r, eval_ in ((a, "greedy, 1024 test problems"), (b, "greedy, 1024 test problems")):
        r["_meta"] = {"world": "toy", "eval": eval_}
    for name, r in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(r))
    pooled = F.pool({"a.json": a, "b.json": b})
    score = pooled["score"]
    assert score["delta"]["mean"] == pytest.approx(0.035)  # +0.08, +0.09, +0.10 in a; -0.03, -0.02, -0.01 in b
    flips = 0.065 + 0.03  # i->c and c->i, each a mean over the six seeds
    assert score["delta_stderr"] == pytest.approx(((flips - 0.035 ** 2) / (6 * N)) ** 0.5)
    # the check's own sampling SE, which computes it where a row lacks it, is the same number
    assert F._sampling_se({k: v for k, v in score.items() if k != "delta_stderr"}, "delta") == pytest.approx(
        score["delta_stderr"])
    assert pooled["_meta"]["seeds"] == 6 and pooled["_meta"]["eval"] == "greedy, 1024 test problems"
    table = ablation_table.markdown(pooled)
    assert table.startswith("World `toy`, 6 seeds pooled from a.json, b.json (fewer: Single-turn RL 3), "
                            "evaluation: greedy, 1024 test problems.")
    # (these rows have no Acc@t2: a missing metric is a dash, not an error); sample std of the six Deltas 0.061
    assert f"| SCoRe | 0.690 ± 0.000 | - | +0.035 ± 0.061 ({score['delta_stderr']:.3f}) |" in table
    assert cli.main(["findings", "--pool", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    findings_md = F.markdown(F.check(pooled), F.Rules())
    assert out.index("| SCoRe | 0.690") < out.index(findings_md) and out.endswith(findings_md + "\n")

def test_a_table_run_again_is_compared_seed_by_seed():
    """reproduce.compare: equal per-seed lists count as repeated; a moved list is reported with its paired
    difference and SE; methods, seeds, base and evaluation that the two do not share are named."""
    from score_lib import reevaluate, reproduce

    recorded = paper_like() | {"_meta": {"eval": "greedy, 1024 test problems", "model_weights": "0123456789abcdef"}}
    again = json.loads(json.dumps(recorded))
    again["_meta"]["eval"] += reevaluate.REEVALUATED  # a re-evaluated table: the same protocol, not noted
    lists = sum(1 for m, r in recorded.items() if not m.startswith("_") for v in r.values()
                if isinstance(v, dict) and "per_seed" in v)
    equal, moved, notes = reproduce.compare(recorded, again)
    assert (equal, moved, notes) == (lists, [], [])
    assert reproduce.markdown("a.json", "b.json", equal, moved, notes).startswith(
        f"b.json repeats a.json: all {lists} per-seed lists equal.")
    # two seeds of SCoRe's c->i move, one up, one down: one list moved, within its paired SE
    again["score"]["delta_c2i"]["per_seed"] = [0.02, 0.00, 0.01]
    again["_meta"]["model_weights"] = "fedcba9876543210"
    del again["st-rl"]
    equal, moved, notes = reproduce.compare(recorded, again)
    st_rl = sum(isinstance(v, dict) and "per_seed" in v for v in recorded["st-rl"].values())
    assert equal == lists - 1 - st_rl and [(x.method, x.metric) for x in moved] == [("score", "delta_c2i")]
    assert moved[0].diff == pytest.approx(0.0) and moved[0].se == pytest.approx(0.01 / 3 ** 0.5)  # +.01, -.01, 0
    assert any("base weights" in n and "fedcba9876543210" in n for n in notes)
    assert any("one recording only" in n and "st-rl" in n for n in notes)
    table = reproduce.markdown("a.json", "b.json", equal, moved, notes)
    assert "1 moved, 0 of them by more than their standard error" in table
    assert "| score | delta_c2i | 0.0100, 0.0100, 0.0100 | 0.0200, 0.0000, 0.0100 | +0.0000 | 0.0058 |" in table
    # one seed of three moved: its mean difference equals its SE exactly, which is no evidence of a move
    again["score"]["delta_c2i"]["per_seed"] = [0.01, 0.01, 0.07]
    assert "1 moved, 0 of them by more" in reproduce.markdown("a.json", "b.json", *reproduce.compare(recorded, again))
    # a larger, steady move clears its SE
    again["score"]["delta_c2i"]["per_seed"] = [0.05, 0.06, 0.05]
    assert "1 of them by more than" in reproduce.markdown("a.json", "b.json", *reproduce.compare(recorded, again))
    # seeds: compared on the ones both hold, and said so
    again["base"]["seeds"] = [1, 2, 5]
    equal, moved, notes = reproduce.compare(recorded, again)
    again["_meta"]["eval"] = "greedy, 512 test problems"
    assert any(n.startswith("evaluation: 'greedy, 1024") for n in reproduce.compare(recorded, again)[2])
    assert any(n.startswith("base: seeds [0, 1, 2] recorded, [1, 2, 5] again") for n in notes)
    again = {"base": {**recorded["base"], "seeds": [7, 8, 9]}}
    with pytest.raises(ValueError, match="share no seed"):
        reproduce.compare(recorded, again)
