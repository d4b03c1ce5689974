"""The article's sizing table beside the planner's own figures (docs/reference.md).

The rows in the docs are computed here from tenancy_sizing; when the sizing changes, this
test prints the rows the docs must hold, so the docs cannot drift from the planner."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.tenancy.core.plugins.plugin_utils.placement import GPU_RESERVE_BYTES
from ansible_collections.tenancy.core.plugins.plugin_utils.sizing import GIB, tenancy_sizing
from ansible_collections.tenancy.core.plugins.plugin_utils.tenant_spec import MAX_MODEL_LEN_DEFAULTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference.md"
A100_80GB = 80 * GIB
# The article's claims: (model, per-instance memory, tenants per A100-80GB).
ARTICLE = [
    ("Qwen3-VL-4B", "6-8 GB", 10),
    ("Qwen3-VL-8B", "8-12 GB", 6),
    ("Qwen3-VL-30B-A3B", "20-24 GB", 3),
]


def minimum(model: str, quantization: str | None) -> tuple[float, int]:
    """(minimum GiB, tenants of that minimum on one A100-80GB) at the image default context."""
    sizing = tenancy_sizing(
        {
            "model": f"Qwen/{model}-Instruct",
            "quantization": quantization,
            "max_model_len": MAX_MODEL_LEN_DEFAULTS["images"],
            "concurrency": 1,
        },
        "/nonexistent",
    )
    size = sizing["minimum_bytes"]
    return size / GIB, int((A100_80GB - GPU_RESERVE_BYTES) // size)


def rows() -> list[str]:
    lines = []
    for model, claim, tenants in ARTICLE:
        cells = [f"{model}", f"{claim}, {tenants} tenants"]
        for quantization in (None, "fp8", "awq"):
            gib, fit = minimum(model, quantization)
            cells.append(f"{gib:.1f} GiB, {fit}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def test_the_docs_hold_the_planners_figures_for_the_articles_table():
    text = DOC.read_text()
    missing = [row for row in rows() if row not in text]
    assert not missing, "docs/reference.md should hold these rows:\n" + "\n".join(rows())


def test_the_planner_refuses_the_articles_8b_figure_in_bf16():
    gib, fit = minimum("Qwen3-VL-8B", None)
    assert gib > 12 and fit < 6
