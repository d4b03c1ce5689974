"""Generate the tiny demo models: a random Qwen3 (text) and a random Qwen3-VL (text and
images), with a locally trained tokenizer.

No hub is reachable on CI or air-gapped hosts, so the demo models are made here, from a
fixed seed, with nothing downloaded. The weights are random: answers are gibberish,
but every code path of a real model (tokenizer, chat template, attention, sampling,
streaming, and for the VL model the image processor, the vision tower and image tokens
in the context) runs. head_dim is 32 because vLLM's CPU attention kernels reject 16.

Usage: python make_tiny_model.py [--vision] OUTPUT_DIR
  (no flag)  Qwen3ForCausalLM, hidden 64, 2 layers (tiny-qwen3).
  --vision   Qwen3VLForConditionalGeneration: the same size of text model with
             interleaved M-RoPE, plus a depth-2 vision tower (patch 16, merge 2), a
             Qwen2-VL image processor (at most 256x256 pixels, so an image costs at
             most 64 tokens) and a chat template that renders image parts
             (tiny-qwen3-vl). Loading its processor needs torchvision.
The model is written to OUTPUT_DIR.tmp and renamed into place, so a crash never
leaves a half-written model behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

VOCAB_SIZE = 4096
SEED = 0
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The VL template: content is a string, or a list of OpenAI-style parts that vLLM hands
# over as {"type": "image"} / {"type": "text", "text": ...}; each image becomes the
# three tokens the Qwen-VL processor expands into the image's patches.
VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'video' or 'video' in part %}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
# Image processor of the VL model: Qwen-VL's patching (16 px patches, 2x2 merged into
# one token), capped at 256x256 pixels so an image is at most (256/32)^2 = 64 tokens.
PATCH = 16
MERGE = 2
MAX_PIXELS = 256 * 256
MIN_PIXELS = (PATCH * MERGE) ** 2
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


def build_tokenizer(vision: bool = False) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS + (VISION_TOKENS if vision else []),
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
    fast.chat_template = VL_CHAT_TEMPLATE if vision else CHAT_TEMPLATE
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


def build_vl_model(tokenizer: PreTrainedTokenizerFast) -> Qwen3VLForConditionalGeneration:
    torch.manual_seed(SEED)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS + VISION_TOKENS}
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "max_position_embeddings": 4096,
            # M-RoPE: head_dim / 2 = 16 frequencies split over time, height and width.
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [8, 4, 4],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "dtype": "float32",
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        dtype="float32",
    )
    return Qwen3VLForConditionalGeneration(config)


def write_processor(target: str) -> None:
    """The image processor's config. Saving a whole Qwen3VLProcessor needs its video
    processor, which needs torchvision's compiled ops; the serving side only reads
    this file, the tokenizer and the chat template."""
    config = {
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen3VLProcessor",
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
        "rescale_factor": 1 / 255,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "patch_size": PATCH,
        "temporal_patch_size": 2,
        "merge_size": MERGE,
        "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        "min_pixels": MIN_PIXELS,
        "max_pixels": MAX_PIXELS,
    }
    with open(os.path.join(target, "preprocessor_config.json"), "w") as handle:
        json.dump(config, handle, indent=2)


def main() -> int:
    args = sys.argv[1:]
    vision = "--vision" in args
    args = [arg for arg in args if arg != "--vision"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    target = args[0].rstrip("/")
    staging = target + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = build_tokenizer(vision)
    model = build_vl_model(tokenizer) if vision else build_model(tokenizer)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    model.generation_config.save_pretrained(staging)
    if vision:
        write_processor(staging)
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
