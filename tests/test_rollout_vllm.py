"""The vLLM rollout backend against a fake `vllm` module (no vllm and no GPU on these machines).

The fake engine decodes with the same transformers model, without a cache, and answers in vLLM's
shapes (RequestOutput.outputs[0].token_ids / .logprobs[t][token].logprob / finish_reason, stop
token kept in token_ids); its load_weights accepts only the base model's parameter names, as
vLLM's does. So these tests check everything our backend does with vLLM's answers: contexts of
later attempts, episodes, masks, logprobs, and the weight sync. Not checked: vLLM itself.
"""
import copy
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from score_lib.config import ConfigError, build_config
from score_lib.episodes import collate
from score_lib.policy import add_lora, load_policy
from score_lib.rollout import rollout, stop_ids
from score_lib.tasks.toy import ToyTask

INSTR = ["Check for a mistake."]


class _Loader:
    """vLLM's model.load_weights: copy by name, refuse names the base model does not have."""

    def __init__(self, model):
        self.model, self.names = model, []

    def load_weights(self, weights):
        params = dict(self.model.named_parameters())
        for name, tensor in weights:
            params[name].data.copy_(tensor)  # KeyError for an adapter's or a wrapper's name
            self.names.append(name)


class FakeLLM:
    instances = []

    def __init__(self, model, **kwargs):
        self.hf, _ = load_policy(model)
        self.hf.eval()
        self.kwargs, self.requests, self.resets = kwargs, [], 0
        runner = SimpleNamespace(model=_Loader(self.hf))
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner)))
        FakeLLM.instances.append(self)

    @torch.no_grad()
    def generate(self, prompts, sampling_params, use_tqdm=True):
        outs = []
        for prompt, sp in zip(prompts, sampling_params):
            self.requests.append((list(prompt["prompt_token_ids"]), sp))
            ctx, ids, lps = list(prompt["prompt_token_ids"]), [], {}
            gen = torch.Generator().manual_seed(sp.seed) if sp.seed is not None else None
            finish = "length"
            lp_list = []
            for _ in range(sp.max_tokens):
                logits = self.hf(input_ids=torch.tensor([ctx])).logits[0, -1].float()
                if sp.temperature == 0:
                    logp = logits.log_softmax(-1)
                    tok = int(logits.argmax())
                else:
                    logp = (logits / sp.temperature).log_softmax(-1)
                    tok = int(torch.multinomial(logp.exp(), 1, generator=gen))
                ids.append(tok)
                ctx.append(tok)
                lp_list.append({tok: SimpleNamespace(logprob=float(logp[tok]), rank=1)})
                if tok in sp.stop_token_ids:
                    finish = "stop"
                    break
            outs.append(SimpleNamespace(prompt_token_ids=prompt["prompt_token_ids"], outputs=[SimpleNamespace(
                token_ids=ids, logprobs=lp_list, finish_reason=finish, stop_reason=None)]))
        return outs

    def reset_prefix_cache(self):
        self.resets += 1


@pytest.fixture()
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", mod)
    # VLLMRollout sets the torch.distributed variables process-wide (as TRL does); left behind, they make
    # later Accelerators in this test process believe in a distributed run: restore them afterwards
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    FakeLLM.instances.clear()
    return mod


@pytest.fixture(scope="module")
def setup(tiny_base):
    model, tok = load_policy(str(tiny_base))
    return model, tok, ToyTask(n_train=64, n_test=64)


def _backend(tiny_base, model, tok):
    from score_lib.rollout_vllm import VLLMRollout

    return VLLMRollout(str(tiny_base), tok, model, torch.float32, seed=0, gpu_memory_utilization=0.3)


@pytest.mark.parametrize("max_new", [24, 3])
def test_episodes_match_the_transformers_backend(fake_vllm, setup, tiny_base, max_new):
    model, tok, task = setup
    # the weak test model rarely ends a turn by itself: with 24 tokens a second stop id that it does emit
    # (the middle token of a probe's attempt) makes attempts end on a stop token; with 3 tokens and only
    # its own stop id they end by truncation
    model = copy.deepcopy(model)
    probs = task.problems("test", 4)
    if max_new == 24:
        probe = rollout(model, tok, probs[:1], [], greedy=True, max_new_tokens=max_new)[0].attempts[0].ids
        model.generation_config.eos_token_id = [tok.eos_token_id, probe[len(probe) // 2]]
    hf = rollout(model, tok, probs, INSTR, n=2, greedy=True, max_new_tokens=max_new)
    vl = _backend(tiny_base, model, tok).rollout(probs, INSTR, n=2, greedy=True, max_new_tokens=max_new)
    assert len(vl) == len(hf) == 8
    for a, b in zip(hf, vl):
        assert (a.problem.id, a.sample, a.prompt_ids, a.glue_ids) == (b.problem.id, b.sample, b.prompt_ids, b.glue_ids)
        for x, y in zip(a.attempts, b.attempts, strict=True):
            assert (x.ids, x.text, x.truncated, x.graded) == (y.ids, y.text, y.truncated, y.graded)
            torch.testing.assert_close(torch.tensor(y.logprobs), torch.tensor(x.logprobs), atol=1e-4, rtol=0)
    for k, v in collate(hf, tok.pad_token_id).items():  # the trainer's view: ids, attention, attempt masks
        assert torch.equal(v, collate(vl, tok.pad_token_id)[k]), k
    truncated = [a.truncated for e in vl for a in e.attempts]
    assert all(truncated) if max_new == 3 else not all(truncated)  # both ways of ending are covered
    # attempt 2 was asked for on prompt + attempt 1 (its stop token included) + glue, as token ids
    fake = FakeLLM.instances[-1]
    ctx, sp = fake.requests[len(vl)]
    e = vl[0]
    assert ctx == e.prompt_ids + e.attempts[0].ids + e.glue_ids[1]
    assert sp.logprobs == 0 and sp.max_tokens == max_new and set(sp.stop_token_ids) == stop_ids(model, tok)
    assert fake.kwargs["logprobs_mode"] == "processed_logprobs"


def test_sampled_logprobs_are_at_the_sampling_temperature(fake_vllm, setup, tiny_base):
    """Logprobs under the tempered distribution, as rollout.py records them: checked by teacher forcing."""
    model, tok, task = setup
    eps = _backend(tiny_base, model, tok).rollout(task.problems("test", 2), INSTR, n=2, temperature=0.7,
                                                  max_new_tokens=10, seed=3)
    batch = collate(eps, tok.pad_token_id)
    with torch.no_grad():
        logp = (model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1] / 0.7
                ).log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    for i, e in enumerate(eps):
        for j, a in enumerate(e.attempts):
            want = logp[i][batch["attempt_index"][i, 1:] == j]
            torch.testing.assert_close(torch.tensor(a.logprobs), want, atol=1e-4, rtol=0)


def test_weight_sync_plain_and_lora(fake_vllm, tiny_base):
    from score_lib.rollout_vllm import VLLMRollout

    model, tok = load_policy(str(tiny_base))
    backend = VLLMRollout(str(tiny_base), tok, model, torch.float32, 0, 0.3)
    engine = FakeLLM.instances[-1]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    backend.sync_weights(model)
    for name, p in model.named_parameters():
        assert torch.equal(dict(engine.hf.named_parameters())[name], p), name
    assert engine.resets == 1

    lora = add_lora(model, r=4, alpha=8)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a trained adapter: the merged weights differ from the base
    ids = torch.tensor([[5, 6, 7, 8]])
    before = lora(input_ids=ids).logits
    backend.sync_weights(lora)
    torch.testing.assert_close(engine.hf(input_ids=ids).logits, before, atol=1e-5, rtol=0)  # engine = merged policy
    # the adapter is unmerged again (W + BA - BA: equal up to float rounding) and still trains on its own
    assert not any(getattr(m, "merged", False) for m in lora.modules())
    torch.testing.assert_close(lora(input_ids=ids).logits, before, atol=1e-5, rtol=0)
    assert not any("lora" in n or "base_model" in n for n in engine.llm_engine.model_executor.driver_worker
                   .model_runner.model.names)


def test_trainer_rolls_out_with_vllm_and_syncs_after_every_step(fake_vllm, tiny_base, tmp_path):
    from tests.conftest import TINY
    from score_lib.trainer import Trainer

    cfg = build_config("toy-score", [*TINY, "rollout_backend=vllm", "eval_every=0", "checkpoint_every=0",
                                     f"model={tiny_base}"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    engine = FakeLLM.instances[-1]
    train = trainer.task.problems("train")
    for step in range(2):
        rec = trainer.rl_step(step, train)
        assert rec["len_t1"] > 0 and rec["len_t2"] > 0
    assert len(engine.requests) == 2 * 2 * cfg.batch_prompts * cfg.samples_per_prompt  # 2 steps x 2 attempts
    assert engine.resets == 2  # one sync per optimiser step
    for name, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters():
        assert torch.equal(dict(engine.hf.named_parameters())[name], p), name


def test_clear_errors(monkeypatch):
    from score_lib.rollout_vllm import require_vllm

    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, as where it is not installed
    with pytest.raises(ConfigError, match=r"rollout_backend.*pip install vllm"):
        require_vllm()
    with pytest.raises(ConfigError, match="rollout_backend"):
        build_config("toy-score", ["rollout_backend=sglang"])
    with pytest.raises(ConfigError, match="rollout_backend"):
        build_config("toy-star", ["rollout_backend=vllm"])
    with pytest.raises(ConfigError, match="vllm_gpu_memory"):
        build_config("toy-score", ["rollout_backend=vllm", "vllm_gpu_memory=1.5"])
