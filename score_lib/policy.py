"""Policies: any Hugging Face causal LM (hub id, local folder, GGUF file) or the tiny toy model.

The toy model is an ordinary `LlamaForCausalLM` with an ordinary `PreTrainedTokenizerFast` and a
chat template, so rollouts, LoRA, saving and loading run the same code for it as for real models.
The reference model of the KL terms is the adapter-disabled base under LoRA (no second copy in
memory) and a frozen copy under full fine-tuning.
"""
from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import torch

TOY_SPECIALS = ["<pad>", "<|user|>", "<|assistant|>", "<|end|>"]
TOY_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}<|end|>"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def toy_tokenizer():
    """A character-level tokenizer over printable ASCII with chat special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {s: i for i, s in enumerate(TOY_SPECIALS + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<|end|>",
                                  additional_special_tokens=["<|user|>", "<|assistant|>"])
    tok.chat_template = TOY_CHAT_TEMPLATE
    return tok


def toy_model(tokenizer, hidden: int = 128, layers: int = 4, heads: int = 4, max_len: int = 512,
              seed: int = 0):
    """A freshly initialised tiny Llama sized for the toy world (about 1M parameters by default)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_len, bos_token_id=None, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def _gguf_location(spec: str) -> tuple[str, str] | None:
    """(folder, file name) when `spec` is a GGUF file or a folder holding exactly one."""
    p = Path(spec)
    if p.is_file() and p.suffix == ".gguf":
        return str(p.parent), p.name
    if p.is_dir() and not (p / "config.json").exists():
        found = sorted(p.glob("*.gguf"))
        if len(found) == 1:
            return str(p), found[0].name
    return None


def load_policy(spec: str, dtype: torch.dtype | None = None):
    """(model, tokenizer) for a hub id, a local folder, a GGUF file, or "toy-base".

    "toy-base" means the cached toy base model (built by `score toy-base`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec == "toy-base" or spec.startswith("toy-base:"):
        from .toy_base import toy_base_path

        path = toy_base_path()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"toy base model not found at {path}: run `score toy-base` first")
        spec = str(path)
    from .models import resolve  # imported here: models -> toy_base -> policy

    spec = resolve(spec)  # a registered name (smollm2-135m) -> its local file; never downloads
    # use_kernels False: transformers >= 5.2x swaps layers for kernels fetched from the hub when the
    # `kernels` package is installed (it is one of transformers' own requirements): on a GPU that needs the
    # network at train() and changes the numerics from one machine to the next (seen on an H200, 2026-12-04)
    kwargs = {"dtype": dtype or torch.float32, "use_kernels": False}
    gguf = _gguf_location(spec)
    if gguf:
        folder, name = gguf
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, **kwargs)
        # GGUF weights are dequantised to float on load; forget the quantiser so the model saves.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    else:
        looks_local = spec.startswith(("/", "./", "../", "~")) or spec.endswith(".gguf")
        if not Path(spec).expanduser().exists() and (looks_local or os.environ.get("HF_HUB_OFFLINE") == "1"):
            raise FileNotFoundError(f"model {spec!r}: no such file or folder" if looks_local else
                                    f"model {spec!r}: not a local path and the hub is offline (HF_HUB_OFFLINE=1)")
        tok = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForCausalLM.from_pretrained(spec, **kwargs)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def compute_dtype(cfg) -> torch.dtype:
    """A TrainConfig's dtype: bf16 on GPU, fp32 on CPU unless the config names one. The toy world stays
    fp32 on a GPU too: its model is ~1M parameters, so bf16 saves nothing, and its lr-2e-4 Adam steps are
    one or two of bf16's rounding steps on its ~0.02 weights and a fortieth of one on its ~1.0 norm gains,
    which would never move: a GPU table would be a different experiment from the CPU one."""
    if cfg.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and cfg.task != "toy" else torch.float32
    return getattr(torch, cfg.dtype)


def accelerator_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_for_eval(spec: str, cfg):
    """(model, tokenizer) for the commands that only evaluate (score eval, --reevaluate, repair): in the
    config's dtype and on the GPU when there is one, as the trainer's own evaluations are."""
    model, tok = load_policy(spec, dtype=compute_dtype(cfg))
    return model.to(accelerator_device()), tok


def add_lora(model, r: int = 16, alpha: int = 32, targets: str = "all-linear", dropout: float = 0.0):
    """Wrap `model` with a LoRA adapter (peft); only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    target = targets if targets == "all-linear" else [t.strip() for t in targets.split(",")]
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=target, lora_dropout=dropout,
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


class Reference:
    """The frozen reference policy of the KL terms (the base model)."""

    def __init__(self, model, lora: bool, device: torch.device | str | None = None):
        self.lora = lora
        self.model = model if lora else copy.deepcopy(model).eval().requires_grad_(False)
        if device is not None and not lora:  # the copy lives beside the policy (a GPU, under accelerate)
            self.model.to(device)

    @contextlib.contextmanager
    def _active(self):
        if self.lora:
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.model

    @torch.no_grad()
    def logits(self, **batch) -> torch.Tensor:
        with self._active() as m:
            return m(**batch).logits


def save_policy(model, tokenizer, path: str | Path) -> None:
    """save_pretrained for model (or adapter) and tokenizer, as safetensors."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
