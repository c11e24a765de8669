"""LoRA: only the adapter trains, and the reference is the adapter-disabled base (no second copy)."""
import torch

from score_lib.config import build_config
from score_lib.policy import load_policy
from score_lib.trainer import Trainer

from .conftest import TINY


def test_lora_trains_only_the_adapter(tiny_base, tmp_path):
    overrides = [o for o in TINY if not o.startswith(("steps", "eval_every"))]
    cfg = build_config("toy-mt-rl", overrides + ["steps=2", "eval_every=0", "lora=true", "lora_r=4", "lr=1e-2"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    base, _ = load_policy(str(tiny_base))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    assert before and trainer.reference.model is trainer.model  # no second copy in memory
    trainer.run()
    after = dict(trainer.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before if "lora_B" in n)
    for name, p in base.named_parameters():  # frozen base weights are untouched
        peft_name = "base_model.model." + name.replace(".weight", ".base_layer.weight")
        tensor = after.get(peft_name, after.get("base_model.model." + name))
        assert tensor is not None and torch.equal(tensor, p), name
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(trainer.reference.logits(input_ids=ids), base(input_ids=ids).logits)
        assert not torch.allclose(trainer.model(input_ids=ids).logits, base(input_ids=ids).logits)
    assert (tmp_path / "run" / "checkpoints").exists()
    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))[-1]
    assert (ckpt / "model" / "adapter_model.safetensors").exists()
