"""Episodes: one problem, k attempts, and the chat glue between them, as token ids.

An episode is the unit every method works on. Its token layout is

    [prompt + assistant header] [attempt 1 + stop] [turn glue + instruction + header] [attempt 2 + stop] ...

and `collate` turns a list of episodes into right-padded tensors with an `attempt_index` per
token: j for the tokens of attempt j (0-based), -1 for the prompt, the instruction glue and
padding. Every loss in the library masks with it, so context tokens never receive a gradient.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .tasks.base import Problem

SENTINEL = "\u2063SCORE-SENTINEL\u2063"


@dataclass
class Attempt:
    """One assistant turn."""

    ids: list[int]
    """Generated token ids, including the stop token when the turn stopped by itself."""
    logprobs: list[float] = field(default_factory=list)
    """Per-token log-probabilities under the sampling distribution (empty for teacher-forced data)."""
    text: str = ""
    """The turn decoded without special tokens."""
    truncated: bool = False
    """True when the turn hit the length limit before its stop token."""
    answer: str | None = None
    """The final answer the oracle's extractor found."""
    reward: float = 0.0
    """Oracle reward r(y, y*) in {0, 1}."""
    graded: bool = True
    """False for turns that are not answers (Self-Refine's critique)."""

    @property
    def correct(self) -> bool:
        return self.reward >= 1.0


@dataclass
class Episode:
    """A problem and the attempts made on it."""

    problem: Problem
    prompt_ids: list[int]
    """Chat-formatted first user turn, ending with the assistant header."""
    glue_ids: list[list[int]]
    """glue_ids[j]: context tokens placed before attempt j (empty for j = 0)."""
    attempts: list[Attempt]
    sample: int = 0
    """Index of this sample among the n drawn for the same problem (for the leave-one-out baseline)."""

    @property
    def graded(self) -> list[Attempt]:
        return [a for a in self.attempts if a.graded]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def glue_ids(tokenizer, instruction: str) -> list[int]:
    """Tokens between an attempt's stop token and the next attempt: end of turn, the instruction as a
    user turn, the assistant header; rendered through the model's own chat template."""
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": SENTINEL},
            {"role": "user", "content": instruction}]
    text = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    after = text[text.index(SENTINEL) + len(SENTINEL):]
    eos = tokenizer.eos_token
    if not after.startswith(eos):
        raise ValueError(f"chat template does not end an assistant turn with {eos!r}: {after[:40]!r}")
    return tokenizer(after[len(eos):], add_special_tokens=False)["input_ids"]


def teacher_forced(tokenizer, problem: Problem, texts: list[str], instruction: str,
                   glue: list[int] | None = None) -> Episode:
    """An episode whose attempts are given texts (SFT data), each closed by the stop token.

    Pass `glue` (glue_ids of the instruction) when building many episodes: rendering the chat
    template is the slow part."""
    glue = glue if glue is not None else glue_ids(tokenizer, instruction)
    attempts = [Attempt(ids=tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id],
                        text=t) for t in texts]
    return Episode(problem=problem, prompt_ids=prompt_ids(tokenizer, problem.prompt),
                   glue_ids=[[]] + [glue] * (len(texts) - 1), attempts=attempts)


def collate(episodes: list[Episode], pad_id: int, attempts: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and attempt_index for a list of episodes.

    `attempts` keeps only the first few attempts of each episode (1 for single-turn data).
    """
    rows, marks = [], []
    for ep in episodes:
        ids, idx = list(ep.prompt_ids), [-1] * len(ep.prompt_ids)
        for j, att in enumerate(ep.attempts[:attempts]):
            ids += ep.glue_ids[j]
            idx += [-1] * len(ep.glue_ids[j])
            ids += att.ids
            idx += [j] * len(att.ids)
        rows.append(ids)
        marks.append(idx)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    attempt_index = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (r, m) in enumerate(zip(rows, marks)):
        input_ids[i, :len(r)] = torch.tensor(r)
        attention[i, :len(r)] = 1
        attempt_index[i, :len(m)] = torch.tensor(m)
    return {"input_ids": input_ids, "attention_mask": attention, "attempt_index": attempt_index}


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """log pi(x_t | x_<t) for t >= 1, shape [B, L-1] (logits at t-1 predict token t)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
