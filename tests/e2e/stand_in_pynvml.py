"""A STAND-IN for NVML (the GPU itself) that the GPU exporter imports as `pynvml`.

tests/e2e/test_gpu_exporter.py copies this file as pynvml.py, with
tests/unit/fake_nvml.py and a stand-in.json (in fake_nvml's fixture shape, listing the
demo engines' real host PIDs with made-up GPU memory), into the directory the monitoring
role mounts at /nvml. Everything else - the container, /proc/<pid>/cgroup, the tenant
records, Prometheus and its rules - is real.
"""

import json
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

from fake_nvml import FakeNVML, NVMLError  # noqa: E402  (found beside this file only)

with open(os.path.join(_HERE, "stand-in.json")) as _handle:
    _nvml = FakeNVML(data=json.load(_handle))

globals().update({name: getattr(_nvml, name) for name in dir(FakeNVML) if name.startswith("nvml")})
__all__ = ["NVMLError", *(name for name in dir(FakeNVML) if name.startswith("nvml"))]
