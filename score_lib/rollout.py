"""Batched k-attempt rollouts with one KV cache across all attempts.

All rows of a batch live in one rectangular buffer. A row that stops early is fed padding with
attention mask 0 (a masked gap) while the others finish; position ids count only real tokens, so
the gap is invisible to the model. The next attempt's glue (end of turn, instruction, assistant
header) is then appended to every row and prefilled on top of the cache, so the context of attempt
2 is never encoded twice. `reuse_kv=False` re-encodes the whole context instead (the baseline the
benchmark compares against); both give the same tokens.

Sampled attempts vary in length: at temperature 1 a few rows of a batch ramble to max_new_tokens
while most stop at a third of it, and every decode step costs the whole batch. Once at most half
of the rows still run, they continue in a smaller stream of their own (`_Stream.rows`), merged back
when the attempt ends (`_Stream.merge`); the finished rows' gap is the same masked padding. Tokens
are still drawn from the whole batch's logits, so the random stream, and every sampled token, is the
one the full batch would give.
"""
from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from .episodes import Attempt, Episode, glue_ids, prompt_ids
from .tasks.base import Problem


def model_device(model) -> torch.device:
    """Where the model's weights live: every tensor fed to it is created or moved there."""
    return next(model.parameters()).device


def stop_ids(model, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(eos) if isinstance(eos, (list, tuple)) else ({eos} if eos is not None else set())
    return {i for i in ids if i is not None}


class _BufferedLayer(DynamicLayer):
    """A DynamicLayer that appends into a buffer with spare room instead of re-concatenating.

    DynamicLayer copies the whole cache on every token (torch.cat), which made cache copies most of
    a toy evaluation's time; doubling the capacity keeps appends amortised O(new tokens).
    """

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._k = self._v = None
            self._n = 0
        n, t = self._n, key_states.shape[-2]
        if self._k is None or n + t > self._k.shape[-2]:
            cap = max(2 * n, n + t, 64)
            k = key_states.new_empty(*key_states.shape[:-2], cap, key_states.shape[-1])
            v = value_states.new_empty(*value_states.shape[:-2], cap, value_states.shape[-1])
            if n:
                k[..., :n, :], v[..., :n, :] = self._k[..., :n, :], self._v[..., :n, :]
            self._k, self._v = k, v
        self._k[..., n:n + t, :] = key_states
        self._v[..., n:n + t, :] = value_states
        self._n = n + t
        self.keys, self.values = self._k[..., :n + t, :], self._v[..., :n + t, :]
        return self.keys, self.values

    def rows(self, index: torch.Tensor) -> "_BufferedLayer":
        """A copy holding only the batch rows `index`."""
        sub = _BufferedLayer()
        sub.lazy_initialization(self.keys, self.values)
        sub._k, sub._v, sub._n = self._k[index], self._v[index], self._n
        sub.keys, sub.values = sub._k[..., :sub._n, :], sub._v[..., :sub._n, :]
        return sub

    def merge(self, sub: "_BufferedLayer", index: torch.Tensor, start: int):
        """Append what `sub` (rows `index` of this layer, split off at length `start`) added since;
        the other rows get zeros, which their attention mask hides (zeros, not empty memory: a masked
        NaN would still poison the attention's weighted sum)."""
        k_new, v_new = sub.keys[..., start:, :], sub.values[..., start:, :]
        k = k_new.new_zeros(self.keys.shape[0], *k_new.shape[1:])
        v = v_new.new_zeros(self.values.shape[0], *v_new.shape[1:])
        k[index], v[index] = k_new, v_new
        self.update(k, v)


class _BufferedCache(DynamicCache):
    """DynamicCache whose layers are _BufferedLayer (same keys and values, no per-token copy)."""

    def __init__(self, layers: list[_BufferedLayer] | None = None):
        if layers is None:
            Cache.__init__(self, layer_class_to_replicate=_BufferedLayer)
        else:
            Cache.__init__(self, layers=layers)


def cache_kwarg(model) -> str:
    """The name the model's forward takes its KV cache under: transformers renamed past_key_values to
    cache after 5.17 (5.24 has both, the old one deprecated); GPU images still carry 5.17, where
    `cache=` would be swallowed by **kwargs and every decode step would re-read no cache at all."""
    base = getattr(model, "module", model)  # DDP / accelerate wrapper
    if hasattr(base, "get_base_model"):  # peft: its own forward only has **kwargs
        base = base.get_base_model()
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A seeded generator where the sampling happens (multinomial wants one on the probabilities' device)."""
    return torch.Generator(device=device).manual_seed(seed) if seed is not None else None


class _Stream:
    """The growing buffer of one batch: a KV cache plus the attention mask and positions behind it."""

    def __init__(self, model, rows: list[list[int]], pad_id: int):
        self.model, self.pad_id = model, pad_id
        self.device = model_device(model)
        self.past, self.cache_name = _BufferedCache(), cache_kwarg(model)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: every row's last token sits in the last column
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        self.mask = mask[:, :0].to(self.device)
        self.pos = torch.zeros(len(rows), dtype=torch.long, device=self.device)
        self.logits = self.feed(ids, mask)

    def feed(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Append a [B, T] chunk (mask 0 marks gaps) and return the next-token logits [B, V]."""
        ids, mask = ids.to(self.device), mask.to(self.device)
        position_ids = self.pos[:, None] + torch.cumsum(mask, dim=1) - mask
        self.mask = torch.cat([self.mask, mask], dim=1)
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=position_ids,
                         use_cache=True, logits_to_keep=1, **{self.cache_name: self.past})
        self.past = out[self.cache_name]
        self.pos += mask.sum(dim=1)
        self.logits = out.logits[:, -1].float()
        return self.logits

    def rows(self, index: torch.Tensor) -> "_Stream":
        """A stream of the batch rows `index` alone (a copy), to decode the rows still running."""
        sub = object.__new__(_Stream)
        sub.model, sub.pad_id, sub.device, sub.cache_name = self.model, self.pad_id, self.device, self.cache_name
        sub.past = _BufferedCache([layer.rows(index) for layer in self.past.layers])
        sub.mask, sub.pos, sub.logits = self.mask[index], self.pos[index], self.logits[index]
        return sub

    def merge(self, sub: "_Stream", index: torch.Tensor):
        """Take back what the rows `index`, split off into `sub`, decoded since; the other rows get a
        masked gap of the same length."""
        start = self.mask.shape[1]
        for layer, sub_layer in zip(self.past.layers, sub.past.layers):
            layer.merge(sub_layer, index, start)
        gap = self.mask.new_zeros(self.mask.shape[0], sub.mask.shape[1] - start)
        gap[index] = sub.mask[:, start:]
        self.mask = torch.cat([self.mask, gap], dim=1)
        self.pos[index] = sub.pos
        self.logits = self.logits.clone()
        self.logits[index] = sub.logits


def make_attempt(tokenizer, ids: list[int], logprobs: list[float], stops, graded: bool = True) -> Attempt:
    """An attempt from its sampled ids (the stop token included when it stopped by itself): the one place
    every rollout backend builds them, so episodes do not depend on the engine."""
    text = tokenizer.decode([t for t in ids if t not in stops], skip_special_tokens=True)
    return Attempt(ids=ids, logprobs=logprobs, text=text, truncated=not (ids and ids[-1] in stops), graded=graded)


def _sample(logits: torch.Tensor, temperature: float, greedy: bool, gen: torch.Generator | None):
    if greedy or temperature <= 0:
        logp = torch.log_softmax(logits, dim=-1)
        tok = logits.argmax(dim=-1)
    else:
        logp = torch.log_softmax(logits / temperature, dim=-1)
        tok = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)
    return tok, logp.gather(1, tok[:, None]).squeeze(1)


# once at most this share of a stream's rows still runs, they decode on in a stream of their own
COMPACT_SHARE = 0.5


def _decode_attempt(stream: _Stream, stops: set[int], max_new_tokens: int, temperature: float,
                    greedy: bool, gen, feed_last: bool):
    """Sample one attempt for every row; returns per-row ids and logprobs."""
    B = stream.pos.shape[0]
    ids = [[] for _ in range(B)]
    lps = [[] for _ in range(B)]
    active = torch.ones(B, dtype=torch.bool, device=stream.device)
    stop_t = torch.tensor(sorted(stops), device=stream.device)
    logits = stream.logits.clone()  # the whole batch's next-token logits; a finished row's are stale, unused
    live, live_rows, splits = stream, torch.arange(B, device=stream.device), []
    for t in range(max_new_tokens):
        tok, lp = _sample(logits, temperature, greedy, gen)
        tok = torch.where(active, tok, torch.full_like(tok, stream.pad_id))
        tok_l, lp_l = tok.tolist(), lp.tolist()  # one device->host copy per step, not one per row
        for i, on in enumerate(active.tolist()):
            if on:
                ids[i].append(tok_l[i])
                lps[i].append(lp_l[i])
        was_active = active.clone()
        active &= ~torch.isin(tok, stop_t)
        last = not bool(active.any()) or t == max_new_tokens - 1
        if feed_last or not last:  # the stop token must enter the cache before the next attempt's glue
            running = was_active[live_rows]  # rows that still feed a token (a stop token included)
            n_run = int(running.sum())
            # (a stream of fewer than 4 rows costs the same per step as 1: splitting it saves nothing)
            if 4 <= len(live_rows) and n_run <= COMPACT_SHARE * len(live_rows):
                keep = running.nonzero().squeeze(1)
                splits.append((live, keep))
                live, live_rows = live.rows(keep), live_rows[keep]
            live.feed(tok[live_rows][:, None], was_active[live_rows].long()[:, None])
            logits[live_rows] = live.logits
        if last:
            break
    while splits:  # fold the split-off streams back into the one they came from
        parent, keep = splits.pop()
        parent.merge(live, keep)
        live = parent
    return ids, lps


@torch.no_grad()
def rollout(model, tokenizer, problems: list[Problem], instructions: list[str], n: int = 1,
            temperature: float = 1.0, greedy: bool = False, max_new_tokens: int = 64,
            reuse_kv: bool = True, seed: int | None = None, graded: list[bool] | None = None) -> list[Episode]:
    """Episodes of len(instructions) + 1 attempts for each problem, n samples each.

    instructions[j] is the user turn placed before attempt j + 1. `graded` marks which attempts are
    answers (all by default; Self-Refine's critique turn is not).
    """
    was_training = model.training
    model.eval()
    gen = _generator(seed, model_device(model))
    stops = stop_ids(model, tokenizer)
    pad = tokenizer.pad_token_id
    rows = [(p, s) for p in problems for s in range(n)]
    prompts = [prompt_ids(tokenizer, p.prompt) for p, _ in rows]
    glues = [glue_ids(tokenizer, text) for text in instructions]
    k = len(instructions) + 1
    graded = graded or [True] * k
    contexts = [list(x) for x in prompts]  # only needed to re-encode (reuse_kv=False)
    attempts: list[list[Attempt]] = [[] for _ in rows]
    stream = _Stream(model, prompts, pad)
    for j in range(k):
        if j > 0:
            glue = glues[j - 1]
            if reuse_kv:
                chunk = torch.tensor([glue] * len(rows))  # moved to the model's device by feed
                stream.feed(chunk, torch.ones_like(chunk))
            else:
                stream = _Stream(model, [c + glue for c in contexts], pad)
            for c in contexts:
                c.extend(glue)
        ids, lps = _decode_attempt(stream, stops, max_new_tokens, temperature, greedy, gen,
                                   feed_last=reuse_kv and j < k - 1)
        for i in range(len(rows)):
            attempts[i].append(make_attempt(tokenizer, ids[i], lps[i], stops, graded[j]))
            contexts[i].extend(ids[i])
    model.train(was_training)
    return [Episode(problem=p, prompt_ids=prompts[i], glue_ids=[[]] + glues, attempts=attempts[i], sample=s)
            for i, (p, s) in enumerate(rows)]


@torch.no_grad()
def continue_episodes(model, tokenizer, episodes: list[Episode], instruction: str, temperature: float = 1.0,
                      greedy: bool = False, max_new_tokens: int = 64, seed: int | None = None) -> list[Episode]:
    """One more attempt after GIVEN earlier attempts (not the model's own): offline repair, and the
    distribution-shift probe. Each row's context differs, so it is encoded afresh."""
    was_training = model.training
    model.eval()
    gen = _generator(seed, model_device(model))
    stops = stop_ids(model, tokenizer)
    glue = glue_ids(tokenizer, instruction)
    contexts = []
    for ep in episodes:
        ctx = list(ep.prompt_ids)
        for j, att in enumerate(ep.attempts):
            ctx += ep.glue_ids[j] + att.ids
        contexts.append(ctx + glue)
    stream = _Stream(model, contexts, tokenizer.pad_token_id)
    ids, lps = _decode_attempt(stream, stops, max_new_tokens, temperature, greedy, gen, feed_last=False)
    model.train(was_training)
    out = []
    for i, ep in enumerate(episodes):
        new = make_attempt(tokenizer, ids[i], lps[i], stops)
        out.append(Episode(problem=ep.problem, prompt_ids=ep.prompt_ids, glue_ids=ep.glue_ids + [glue],
                           attempts=[*ep.attempts, new], sample=ep.sample))
    return out


def grade(task, episodes: list[Episode]) -> list[Episode]:
    """Fill each graded attempt's answer and oracle reward (in one batch when the task can:
    code tasks run their sandboxed tests concurrently)."""
    todo = [(att, ep.problem) for ep in episodes for att in ep.attempts if att.graded]
    if hasattr(task, "grade_many"):
        rewards = task.grade_many([a.text for a, _ in todo], [p for _, p in todo])
    else:
        rewards = [task.grade(a.text, p) for a, p in todo]
    for (att, _), r in zip(todo, rewards):
        att.answer = task.extract_answer(att.text)
        att.reward = float(r)
    return episodes
