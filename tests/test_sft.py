"""STaR and Pair-SFT datasets keep exactly the traces the paper describes."""
from score_lib.episodes import Attempt, Episode
from score_lib.sft import pair_dataset, star_dataset
from score_lib.tasks.base import Problem


def _ep(pid, r1, r2=None, sample=0):
    atts = [Attempt(ids=[1, int(r1)], reward=r1, text=f"y1-{pid}-{sample}")]
    if r2 is not None:
        atts.append(Attempt(ids=[2, int(r2)], reward=r2))
    return Episode(problem=Problem(id=pid, prompt=pid, answer=""), prompt_ids=[0], glue_ids=[[], [9]],
                   attempts=atts, sample=sample)


def test_star_keeps_successful_revisions():
    eps = [_ep("a", 0, 1), _ep("b", 1, 1), _ep("c", 1, 0), _ep("d", 0, 0)]
    assert [e.problem.id for e in star_dataset(eps, plus=False)] == ["a"]
    assert [e.problem.id for e in star_dataset(eps, plus=True)] == ["a", "b"]


def test_pair_sft_pairs_wrong_first_attempts_with_correct_ones():
    firsts = [_ep("p", 0, sample=0), _ep("p", 1, sample=1), _ep("p", 0, sample=2),
              _ep("q", 0, sample=0), _ep("q", 0, sample=1)]  # q has no correct sample: no pair
    pairs = pair_dataset(firsts, plus=False, glue=[9], seed=0)
    assert len(pairs) == 2
    for e in pairs:
        assert e.problem.id == "p" and not e.attempts[0].correct and e.attempts[1].correct
        assert e.glue_ids == [[], [9]]
    plus = pair_dataset(firsts, plus=True, glue=[9], seed=0)
    assert len(plus) == 3 and sum(e.attempts[0].correct for e in plus) == 1
    assert all(e.attempts[1].correct for e in plus)
