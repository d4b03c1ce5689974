"""The MIG tables: names per GPU family, usable memory as `nvidia-smi mig -lgip` reports
it, and any -lgip output recorded on a real GPU (tests/unit/fixtures/mig/<family>.txt,
written by `make device-check`) must agree with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.tenancy.core.plugins.plugin_utils import mig as tenancy_mig

GIB = 1024**3
RECORDED = sorted((Path(__file__).parent / "fixtures" / "mig").glob("*.txt"))

LGIP_SAMPLE = """\
+-------------------------------------------------------------------------------+
| GPU instance profiles:                                                        |
| GPU   Name               ID    Instances   Memory     P2P    SM    DEC   ENC  |
|                                Free/Total   GiB              CE    JPEG  OFA  |
|===============================================================================|
|   0  MIG 1g.18gb         19     7/7        16.00      No     16     1     0   |
|                                                               1     1     0   |
+-------------------------------------------------------------------------------+
|   0  MIG 1g.18gb+me      20     1/1        16.00      No     16     1     0   |
|                                                               1     1     1   |
+-------------------------------------------------------------------------------+
|   0  MIG 7g.141gb         0     1/1        140.00     No     132    7     0   |
+-------------------------------------------------------------------------------+
"""


@pytest.mark.parametrize(
    ("name", "total_gib", "expected"),
    [
        ("NVIDIA A100-SXM4-40GB", 40, ["1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]),
        ("NVIDIA A100-SXM4-80GB", 80, ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]),
        ("NVIDIA H100 80GB HBM3", 80, ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]),
        ("NVIDIA H200", 140.4, ["1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]),
    ],
)
def test_each_family_has_its_profile_names_smallest_first(name, total_gib, expected):
    found = tenancy_mig.profiles(name, int(total_gib * GIB))
    assert [p.name for p in found] == expected
    sizes = [p.memory_bytes for p in found]
    assert sizes == sorted(sizes)


def test_usable_memory_is_the_lgip_figure_not_the_nominal_size():
    h200 = {p.name: p.memory_bytes for p in tenancy_mig.profiles("NVIDIA H200", int(140.4 * GIB))}
    assert h200["1g.18gb"] == 16 * GIB
    assert h200["7g.141gb"] == 140 * GIB
    a100 = {p.name: p.memory_bytes for p in tenancy_mig.profiles("NVIDIA A100-SXM4-80GB", 80 * GIB)}
    assert a100["1g.10gb"] == int(9.5 * GIB)


def test_lgip_output_is_parsed_without_media_variants():
    assert tenancy_mig.parse_lgip(LGIP_SAMPLE) == {"1g.18gb": 16.0, "7g.141gb": 140.0}


def test_an_unknown_gpu_has_no_table():
    assert tenancy_mig.profiles("NVIDIA L40S", 48 * GIB) == []


@pytest.mark.skipif(not RECORDED, reason="no -lgip output recorded on a GPU yet (make device-check writes one)")
@pytest.mark.parametrize("recorded", RECORDED, ids=[p.stem for p in RECORDED])
def test_the_table_matches_lgip_recorded_on_a_gpu(recorded):
    measured = tenancy_mig.parse_lgip(recorded.read_text())
    assert measured, f"{recorded}: no profile rows"
    assert measured == {name: gib for name, gib in tenancy_mig.table(recorded.stem).items() if name in measured}
