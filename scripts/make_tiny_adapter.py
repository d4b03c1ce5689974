"""Write the demo's LoRA adapter for the tiny text model (tiny-qwen3), in PEFT's layout:
adapter_config.json and adapter_model.safetensors, rank 8 on q_proj and v_proj.

The weights are random but fixed (a seeded generator), so the files are the same bytes
every time: the demo inventory keeps them (inventory/local/adapters/tiny-chat-pirate),
and `--check` (a unit test) proves they are what this script writes. Pure Python: the
safetensors format is an 8-byte header length, a JSON header, then the raw tensors.

  python scripts/make_tiny_adapter.py [--check] [DIRECTORY]
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "inventory" / "local" / "adapters" / "tiny-chat-pirate"

# tiny-qwen3 (roles/images/files/model/make_tiny_model.py): hidden 64, 4 query heads
# and 2 key-value heads of 32, 2 layers.
BASE = "tiny-qwen3"
LAYERS, HIDDEN, Q_OUT, KV_OUT = 2, 64, 4 * 32, 2 * 32
RANK, ALPHA = 8, 16
SEED = 29  # issue #29


def tensors() -> dict[str, tuple[list[int], list[float]]]:
    """Name -> (shape, values) of every LoRA matrix. B is not zero (PEFT starts it at
    zero), so the adapter changes what the model answers."""
    rng = random.Random(SEED)
    out = {}
    for layer in range(LAYERS):
        for module, width in (("q_proj", Q_OUT), ("v_proj", KV_OUT)):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            out[f"{prefix}.lora_A.weight"] = ([RANK, HIDDEN], [rng.uniform(-0.5, 0.5) for _ in range(RANK * HIDDEN)])
            out[f"{prefix}.lora_B.weight"] = ([width, RANK], [rng.uniform(-0.5, 0.5) for _ in range(width * RANK)])
    return out


def safetensors_bytes(named: dict[str, tuple[list[int], list[float]]]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    data = b""
    for name in sorted(named):
        shape, values = named[name]
        raw = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + data


def config_bytes() -> bytes:
    config = {
        "base_model_name_or_path": BASE,
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": RANK,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "target_modules": ["q_proj", "v_proj"],
        "modules_to_save": None,
        "inference_mode": True,
    }
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def files() -> dict[str, bytes]:
    return {"adapter_config.json": config_bytes(), "adapter_model.safetensors": safetensors_bytes(tensors())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--check", action="store_true", help="fail unless DIRECTORY holds exactly these files")
    args = parser.parse_args()
    wanted = files()
    if args.check:
        found = {p.name: p.read_bytes() for p in args.directory.iterdir()} if args.directory.is_dir() else {}
        if found != wanted:
            print(f"{args.directory} is not what {Path(__file__).name} writes; run it again", file=sys.stderr)
            return 1
        return 0
    args.directory.mkdir(parents=True, exist_ok=True)
    for name, content in wanted.items():
        (args.directory / name).write_bytes(content)
    print(f"wrote {args.directory} ({sum(map(len, wanted.values()))} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
