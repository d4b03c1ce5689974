"""A tenant's LoRA adapters (tenant field adapters): what the planner refuses before any
host changes (naming the tenant, the field and the value), the engine arguments, the
memory they take from the quota, and the role's clean-up of adapters taken out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tenancy.core.plugins.plugin_utils import adapters
from tenancy_plan import tenancy_plan
from tenancy_plan_table import tenancy_plan_table
from tenancy_tenant_files import tenancy_file_leftovers, tenancy_tenant_files

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "inventory" / "local" / "adapters" / "tiny-chat-pirate"
A100_80 = {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory": "80GiB"}
QWEN8 = "Qwen/Qwen3-VL-8B-Instruct"


def demo_copy(directory: Path, name: str = "pirate") -> Path:
    target = directory / name
    shutil.copytree(DEMO, target)
    return target


def edit_config(adapter: Path, **changes) -> None:
    path = adapter / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def plan(directory: Path, entries: list, hosts=None, **fields) -> dict:
    tenant = {"name": "a", "port": 30001, "served_model_name": "tiny-chat", "adapters": entries, **fields}
    hosts = hosts or {"localhost": {"tenancy_cpus": 2}}
    # No models dir: the sizes come from the known models table, as on a fresh controller.
    return tenancy_plan([tenant], {}, hosts, None, "/nonexistent", files_dir=str(directory))[0]


def refusal(directory: Path, entries: list, **fields) -> str:
    with pytest.raises(AnsibleFilterError) as error:
        plan(directory, entries, **fields)
    return str(error.value)


def test_the_demo_adapter_is_what_its_script_writes():
    """The committed files are the script's output, byte for byte (the seed fixes them)."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tiny_adapter.py"), "--check"], check=False)
    assert result.returncode == 0


def test_an_adapter_is_read_from_the_inventorys_directory(tmp_path):
    demo_copy(tmp_path)
    record = plan(tmp_path, [{"name": "pirate", "path": "pirate"}])
    (adapter,) = record["adapters"]
    assert adapter["path"] == str(tmp_path / "pirate")
    assert (adapter["rank"], adapter["base"]) == (8, "tiny-qwen3")
    assert [f["name"] for f in adapter["files"]] == ["adapter_config.json", "adapter_model.safetensors"]
    weights = adapter["files"][1]
    assert weights["bytes"] == (tmp_path / "pirate" / "adapter_model.safetensors").stat().st_size
    assert len(weights["sha256"]) == 64
    args = record["engine_args"]
    lora = args[args.index("--enable-lora") : args.index("--lora-modules") + 2]
    assert lora == [
        "--enable-lora",
        "--max-loras",
        "1",
        "--max-lora-rank",
        "8",
        "--lora-modules",
        "pirate=/data/adapters/pirate",
    ]


def test_a_changed_file_changes_the_record(tmp_path):
    """The sha256 is in the record, so the tenant converges again (and only it)."""
    adapter = demo_copy(tmp_path)
    before = plan(tmp_path, [{"name": "pirate", "path": "pirate"}])["adapters"]
    (adapter / "adapter_model.safetensors").write_bytes(
        (adapter / "adapter_model.safetensors").read_bytes()[:-4] + b"\0\0\0\1"
    )
    after = plan(tmp_path, [{"name": "pirate", "path": "pirate"}])["adapters"]
    assert before[0]["files"][1]["sha256"] != after[0]["files"][1]["sha256"]


def test_the_adapters_take_host_memory_on_a_cpu_host(tmp_path):
    """vLLM's slots for one rank-8 adapter of tiny-qwen3 (float32): 2 layers x 8 x
    (qkv 64+128+128, o 128+64, gate_up 64+256, down 128+64) x 4 bytes."""
    demo_copy(tmp_path)
    without = plan(tmp_path, [])
    record = plan(tmp_path, [{"name": "pirate", "path": "pirate"}])
    slots = 2 * 8 * ((64 + 128 + 128) + (128 + 64) + (64 + 256) + (128 + 64)) * 4
    assert record["sizing"]["lora_bytes"] == slots
    assert record["memory_limit"] - without["memory_limit"] == slots


def test_on_a_gpu_the_adapters_come_out_of_the_kv_cache(tmp_path):
    adapter = demo_copy(tmp_path, "qwen")
    edit_config(adapter, base_model_name_or_path=QWEN8, r=16)
    # The demo's tensors are rank 8 and 64 wide: a rank-16 adapter of an 8B model has other shapes.
    (adapter / "adapter_model.safetensors").unlink()
    (adapter / "adapter_model.bin").write_bytes(b"\0" * 1024)
    hosts = {"g1": {"tenancy_gpus": [A100_80]}}
    fields = {"model": QWEN8, "served_model_name": "qwen", "gpu_memory": "26G"}
    without = plan(tmp_path, [], hosts, **fields)
    record = plan(tmp_path, [{"name": "qwen-sql", "path": "qwen"}], hosts, **fields)
    # 36 layers x rank 16 x (qkv 4096+4096+2x1024, o 4096+4096, gate_up 4096+2x12288, down 12288+4096) x bf16
    slots = 36 * 16 * (10240 + 8192 + 28672 + 16384) * 2
    assert record["sizing"]["lora_bytes"] == slots
    assert without["kv_cache_bytes"] - record["kv_cache_bytes"] == slots
    assert "--max-lora-rank" in record["engine_args"]


def test_a_quota_too_small_for_the_adapters_names_them(tmp_path):
    adapter = demo_copy(tmp_path, "qwen")
    edit_config(adapter, base_model_name_or_path=QWEN8, r=512)
    (adapter / "adapter_model.safetensors").unlink()
    (adapter / "adapter_model.bin").write_bytes(b"\0")
    entries = [{"name": f"n{i}", "path": "qwen"} for i in range(8)]
    with pytest.raises(AnsibleFilterError) as error:
        plan(
            tmp_path,
            entries,
            {"g1": {"tenancy_gpus": [A100_80]}},
            model=QWEN8,
            served_model_name="qwen",
            gpu_memory="26G",
        )
    message = str(error.value)
    assert "tenant 'a'" in message and "gpu_memory" in message and "LoRA adapters" in message


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ("pirate", "expected a list of {name, path}"),
        ([{"name": "pirate"}], "exactly name and path"),
        ([{"name": "-x", "path": "pirate"}], "'-x'"),
        ([{"name": "p", "path": "pirate"}, {"name": "P", "path": "pirate"}], "names the same adapter twice"),
        ([{"name": "tiny-chat", "path": "pirate"}], "served_model_name"),
        ([{"name": "p", "path": "missing"}], "cannot read"),
    ],
)
def test_bad_entries_are_refused(tmp_path, entries, fragment):
    demo_copy(tmp_path)
    message = refusal(tmp_path, entries)
    assert "tenant 'a'" in message and "adapters" in message and fragment in message


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"base_model_name_or_path": "Qwen/Qwen3-VL-8B-Instruct"}, "was trained on 'Qwen/Qwen3-VL-8B-Instruct'"),
        ({"r": 1024}, "above vLLM's largest --max-lora-rank 512"),
        ({"r": 16}, "not [16, in] for its rank 16"),
        ({"r": "8"}, "has no rank r"),
        ({"peft_type": "IA3"}, "vLLM serves LoRA adapters only"),
    ],
)
def test_an_adapter_that_does_not_fit_the_model_is_refused(tmp_path, change, fragment):
    edit_config(demo_copy(tmp_path), **change)
    message = refusal(tmp_path, [{"name": "pirate", "path": "pirate"}])
    assert "tenant 'a'" in message and "field 'adapters'" in message and fragment in message


def test_weights_of_another_width_are_refused(tmp_path):
    """The demo adapter's A matrices take 64 inputs (tiny-qwen3's hidden size): no layer of
    Qwen3-VL-4B (the known models table: 2560 hidden, 4096 attention, 9728 MLP) does."""
    edit_config(demo_copy(tmp_path), base_model_name_or_path="Qwen/Qwen3-VL-4B-Instruct")
    hosts = {"g1": {"tenancy_gpus": [A100_80]}}
    with pytest.raises(AnsibleFilterError) as error:
        plan(
            tmp_path, [{"name": "pirate", "path": "pirate"}], hosts, model="Qwen/Qwen3-VL-4B-Instruct", gpu_memory="20G"
        )
    assert "takes 64 inputs, which no layer of 'Qwen/Qwen3-VL-4B-Instruct' has (2560, 4096, 9728)" in str(error.value)


def test_a_directory_without_weights_or_with_a_link_is_refused(tmp_path):
    adapter = demo_copy(tmp_path)
    os.symlink("/etc/passwd", adapter / "extra")
    assert "is not a plain file" in refusal(tmp_path, [{"name": "pirate", "path": "pirate"}])
    (adapter / "extra").unlink()
    (adapter / "adapter_model.safetensors").unlink()
    assert "has no adapter_model.safetensors or adapter_model.bin" in refusal(
        tmp_path, [{"name": "pirate", "path": "pirate"}]
    )


def test_a_tenant_being_removed_needs_no_adapter_files(tmp_path):
    record = plan(tmp_path, [{"name": "pirate", "path": "gone"}], state="absent")
    assert record["adapters"] == []


@pytest.mark.parametrize(
    ("base", "model", "ok"),
    [
        ("tiny-qwen3", "tiny-qwen3", True),
        ("/models/tiny-qwen3/", "tiny-qwen3", True),
        ("Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-8B-Instruct", True),
        ("/home/x/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-8B-Instruct", True),
        ("tiny-qwen3-vl", "tiny-qwen3", False),
        ("Qwen/Qwen3-VL-4B-Instruct", "Qwen/Qwen3-VL-8B-Instruct", False),
    ],
)
def test_base_matches(base, model, ok):
    assert adapters.base_matches(base, model) is ok


def test_max_rank_is_the_smallest_vllm_takes():
    assert [adapters.max_rank([{"rank": r}]) for r in (1, 2, 8, 9, 300, 512)] == [1, 8, 8, 16, 320, 512]


def test_the_plan_table_names_the_adapters(tmp_path):
    demo_copy(tmp_path)
    (_header, row) = tenancy_plan_table([plan(tmp_path, [{"name": "pirate", "path": "pirate"}])])
    assert "tiny-qwen3 as tiny-chat +pirate" in row


def test_the_layout_and_the_leftovers_on_the_volume():
    record = {
        "model_private": True,
        "model": "/c/models/acme",
        "model_files": [{"name": "config.json"}, {"name": "sub/dir/w.safetensors"}],
        "adapters": [{"name": "keep", "path": "/c/a/keep/", "files": [{"name": "adapter_config.json"}]}],
    }
    layout = tenancy_tenant_files(record, "/d/a/")
    assert layout["roots"] == ["/d/a/model", "/d/a/adapters"]
    assert layout["dirs"] == [
        "/d/a/adapters",
        "/d/a/model",
        "/d/a/adapters/keep",
        "/d/a/model/sub",
        "/d/a/model/sub/dir",
    ]
    assert layout["copies"] == [
        {"src": "/c/models/acme/config.json", "dest": "/d/a/model/config.json"},
        {"src": "/c/models/acme/sub/dir/w.safetensors", "dest": "/d/a/model/sub/dir/w.safetensors"},
        {"src": "/c/a/keep/adapter_config.json", "dest": "/d/a/adapters/keep/adapter_config.json"},
    ]
    found = [
        "/d/a/model/config.json",
        "/d/a/model/old.bin",
        "/d/a/model/sub",
        "/d/a/model/sub/dir",
        "/d/a/model/sub/dir/w.safetensors",
        "/d/a/model/sub/stale",
        "/d/a/model/sub/stale/x",
        "/d/a/adapters/keep",
        "/d/a/adapters/keep/adapter_config.json",
        "/d/a/adapters/gone",
        "/d/a/adapters/gone/adapter_config.json",
    ]
    assert tenancy_file_leftovers(found, layout) == ["/d/a/adapters/gone", "/d/a/model/old.bin", "/d/a/model/sub/stale"]
    assert (
        tenancy_file_leftovers([p for p in found if "gone" not in p and "stale" not in p and "old" not in p], layout)
        == []
    )
    # A shared model and no adapters: only the (empty) adapters directory is the tenant's.
    shared = tenancy_tenant_files({"model_private": False, "adapters": []}, "/d/b")
    assert shared == {"roots": ["/d/b/adapters"], "dirs": ["/d/b/adapters"], "copies": []}
    assert tenancy_file_leftovers(["/d/b/adapters/x"], shared) == ["/d/b/adapters/x"]
