"""The paper's reported numbers (Kumar et al., 2024), in percent, to print next to our runs.

Table 2: MATH500 with Gemini 1.5 Flash. Table 4: ablations on MATH. HumanEval: Gemini 1.0 Pro
trained on MBPP. Cells the paper does not report are None. Keys match derive.COMPARE_KEYS' names.
"""
from __future__ import annotations


def _row(name, t1, t2, delta, i2c=None, c2i=None):
    return {"run": name, "Acc@t1": t1, "Acc@t2": t2, "Delta": delta, "i->c": i2c, "c->i": c2i,
            "answer change": None, "unchanged": None, "n": None}


TABLES: dict[str, list[dict]] = {
    "Table 2 (MATH500)": [
        _row("paper: Base model", 52.6, 41.4, -11.2, 4.6, 15.8),
        _row("paper: Self-Refine", 52.8, 51.8, -1.0, 3.2, 4.2),
        _row("paper: STaR", 55.4, 41.2, -14.2, 5.4, 19.6),
        _row("paper: STaR+", 53.6, 54.0, 0.4, 2.6, 2.2),
        _row("paper: Pair-SFT", 52.4, 54.2, 1.8, 5.4, 3.6),
        _row("paper: Pair-SFT+", 55.0, 55.0, 0.0, 0.0, 0.0),
        _row("paper: SCoRe", 60.0, 64.4, 4.4, 5.8, 1.4),
    ],
    "Table 4 (MATH ablations)": [
        _row("paper: SCoRe", 60.0, 64.4, 4.4),
        _row("paper: single-turn RL only", 61.8, 59.4, -2.4),
        _row("paper: without Stage I", 59.2, 61.4, 2.2),
        _row("paper: without reward shaping", 60.0, 62.6, 2.6),
        _row("paper: STaR in Stage II", 56.2, 58.4, 2.2),
    ],
    "HumanEval (code)": [
        _row("paper: Base model", 53.7, 56.7, 3.0, 7.9, 4.9),
        _row("paper: Self-Refine", 53.7, 52.5, -1.2),
        _row("paper: Pair-SFT", 56.1, 54.3, -1.8),
        _row("paper: SCoRe", 52.4, 64.6, 12.2, 15.2, 3.0),
    ],
}

# Which paper row a run of a given method corresponds to (for the "closest paper row" hint).
METHOD_ROW = {"score": "SCoRe", "self-refine": "Self-Refine", "star": "STaR", "star-plus": "STaR+",
              "pair-sft": "Pair-SFT", "pair-sft-plus": "Pair-SFT+", "st-rl": "single-turn RL only",
              "stage2": "without Stage I"}
