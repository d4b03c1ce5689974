"""Generate the tiny demo model: a random Qwen3ForCausalLM with a locally trained tokenizer.

No hub is reachable on CI or air-gapped hosts, so the demo model is made here, from a
fixed seed, with nothing downloaded. The weights are random: answers are gibberish,
but every code path of a real model (tokenizer, chat template, attention, sampling,
streaming) runs. head_dim is 32 because vLLM's CPU attention kernels reject 16.

Usage: python make_tiny_model.py OUTPUT_DIR
The model is written to OUTPUT_DIR.tmp and renamed into place, so a crash never
leaves a half-written model behind.
"""

from __future__ import annotations

import os
import random
import shutil
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

VOCAB_SIZE = 4096
SEED = 0
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = [
    "the",
    "a",
    "tenant",
    "model",
    "gpu",
    "memory",
    "quota",
    "network",
    "gateway",
    "key",
    "rate",
    "limit",
    "token",
    "request",
    "answer",
    "engine",
    "volume",
    "encrypted",
    "data",
    "server",
    "shared",
    "safe",
    "isolated",
    "fast",
    "slow",
    "hello",
    "world",
    "test",
    "ansible",
    "docker",
    "vllm",
    "inference",
    "prompt",
    "completion",
    "chat",
    "stream",
    "user",
    "assistant",
    "system",
]


def corpus(lines: int = 4000) -> list[str]:
    rng = random.Random(SEED)
    text = []
    for _ in range(lines):
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16)))
        text.append(sentence.capitalize() + rng.choice([".", "?", "!"]) + " " + str(rng.randint(0, 9999)))
    return text


def build_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer: PreTrainedTokenizerFast) -> Qwen3ForCausalLM:
    torch.manual_seed(SEED)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        torch_dtype="float32",
    )
    return Qwen3ForCausalLM(config)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = sys.argv[1].rstrip("/")
    staging = target + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    model.generation_config.save_pretrained(staging)
    # Engines run as an unprivileged user and mount the models dir read-only.
    for root, dirs, files in os.walk(staging):
        for entry in dirs:
            os.chmod(os.path.join(root, entry), 0o755)
        for entry in files:
            os.chmod(os.path.join(root, entry), 0o644)
    os.chmod(staging, 0o755)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    params = sum(p.numel() for p in model.parameters())
    print(f"tiny model written to {target}: {params} parameters, vocab {len(tokenizer)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
