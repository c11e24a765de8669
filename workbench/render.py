"""HTML for showing attempts: character diffs and per-token colouring. Pure (text in, HTML out), so
notebooks can display the same thing with IPython.display.HTML."""
from __future__ import annotations

import difflib
import html
import math
from collections.abc import Sequence

BOX = ("font-family: ui-monospace, monospace; font-size: 0.9rem; white-space: pre-wrap; "
       "word-break: break-all; line-height: 1.6; padding: 0.5rem; border: 1px solid #ddd; border-radius: 4px;")
DEL = "background: #ffc9c9; text-decoration: line-through;"
INS = "background: #b2f2bb;"


def _span(text: str, style: str = "", title: str | None = None) -> str:
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<span style="{style}"{t}>{html.escape(text)}</span>' if style or t else html.escape(text)


def box(inner: str) -> str:
    return f'<div style="{BOX}">{inner}</div>'


def plain_html(text: str) -> str:
    return box(html.escape(text))


def diff_html(y1: str, y2: str) -> tuple[str, str]:
    """(attempt 1, attempt 2) as HTML: characters only in y1 struck out red, only in y2 green."""
    sm = difflib.SequenceMatcher(None, y1, y2, autojunk=False)  # autojunk drops common chars of long texts
    left, right = [], []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            left.append(_span(y1[i1:i2]))
            right.append(_span(y2[j1:j2]))
        else:
            if i2 > i1:
                left.append(_span(y1[i1:i2], DEL))
            if j2 > j1:
                right.append(_span(y2[j1:j2], INS))
    return box("".join(left)), box("".join(right))


def logprob_html(tokens: Sequence[str], logprobs: Sequence[float]) -> str:
    """Tokens shaded by how unlikely the policy found them: white at p=1, red as p -> 0."""
    parts = []
    for tok, lp in zip(tokens, logprobs):
        p = math.exp(lp) if isinstance(lp, (int, float)) and lp <= 0 else 1.0
        parts.append(_span(str(tok), f"background: rgba(214, 39, 40, {0.85 * (1 - p):.2f});",
                           f"logprob {lp:.3f}  p {p:.3f}" if isinstance(lp, (int, float)) else None))
    return box("".join(parts))


def advantage_html(tokens: Sequence[str], advantage: float, scale: float) -> str:
    """Every token of an attempt carries that attempt's advantage (per-attempt credit, gamma = 0):
    green when pushed up, red when pushed down, stronger with |advantage| / ``scale``."""
    strength = min(1.0, abs(advantage) / scale) if scale > 0 else 0.0
    rgb = "44, 160, 44" if advantage > 0 else "214, 39, 40"
    style = f"background: rgba({rgb}, {0.75 * strength:.2f});" if advantage else ""
    return box("".join(_span(str(t), style, f"advantage {advantage:+.3f}") for t in tokens))
