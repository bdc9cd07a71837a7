"""Build a tiny random-weight Qwen2 model and a locally trained tokenizer into a directory.

Runs with the engine venv's python (it needs torch, transformers and tokenizers).
Usage: python _build_tiny_model.py OUT_DIR PARAMS_JSON
Nothing is fetched from any hub: the tokenizer is trained on the sentences in PARAMS_JSON and
the weights come from a seeded initialisation (the caller also sets HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

# ChatML, as the Qwen2.5 instruct models use (without their tool-calling branches).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- else %}{%- for part in message['content'] %}"
    "{%- if part['type'] == 'text' %}{{- part['text'] }}{%- endif %}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def train_tokenizer(sentences: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE trained on the given sentences, with the ChatML special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, out: Path, max_len: int) -> None:
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        model_max_length=max_len,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))


def model_config(params: dict[str, Any], tokenizer: Tokenizer) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=params["vocab_size"],
        hidden_size=params["hidden_size"],
        intermediate_size=params["intermediate_size"],
        num_hidden_layers=params["num_hidden_layers"],
        num_attention_heads=params["num_attention_heads"],
        num_key_value_heads=params["num_key_value_heads"],
        max_position_embeddings=params["max_position_embeddings"],
        rope_theta=params["rope_theta"],
        tie_word_embeddings=True,
        bos_token_id=tokenizer.token_to_id(ENDOFTEXT),
        eos_token_id=tokenizer.token_to_id(IM_END),
        pad_token_id=tokenizer.token_to_id(ENDOFTEXT),
        torch_dtype=params["dtype"],
    )


def save_model(config: Qwen2Config, out: Path, seed: int, dtype: str) -> None:
    torch.manual_seed(seed)  # the same parameters always give the same weights
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.eval()
    model.save_pretrained(str(out), safe_serialization=True)
    GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    ).save_pretrained(str(out))


def build(out: Path, params: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(params["sentences"], params["vocab_size"])
    if tokenizer.get_vocab_size() > params["vocab_size"]:
        raise SystemExit(f"tokenizer vocab {tokenizer.get_vocab_size()} exceeds model vocab {params['vocab_size']}")
    save_tokenizer(tokenizer, out, params["max_position_embeddings"])
    save_model(model_config(params, tokenizer), out, params["seed"], params["dtype"])
    (out / "tiny-model-params.json").write_text(json.dumps(params, indent=1, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    out, params = Path(argv[0]), json.loads(argv[1])
    torch.set_num_threads(1)  # the model is tiny; threads only add start-up cost
    build(out, params)
    print(json.dumps({"model_dir": str(out), "files": sorted(p.name for p in out.iterdir())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
