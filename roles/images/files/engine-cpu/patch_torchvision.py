"""Make PyPI's torchvision importable beside torch+cpu (run once, at image build).

Why torchvision is in the image at all: vLLM's Qwen-VL input processing (the image
processor behind Qwen3-VL tenants) imports it. Why it needs this: PyPI only has CUDA
builds of torchvision, and the CPU index (download.pytorch.org) is not reachable
from every build host. A CUDA build's compiled ops (``_C.so``) link
``libc10_cuda.so``/``libtorch_cuda.so``, which torch+cpu does not ship, so they never
load. torchvision copes with that (``extension._has_ops()`` turns false), except that
its ``__init__`` imports ``_meta_registrations`` and ``_autograd_registrations``
unconditionally, and those register fakes for ``torchvision::nms`` & co., which then
do not exist: ``import torchvision`` fails, and with it every model load, because
transformers imports torchvision whenever it is installed.

So this script:
- deletes the compiled libraries and the CUDA/JPEG libraries bundled for them
  (``torchvision.libs``): dead weight that can never load here;
- imports the two registration modules only when the ops did load.
Everything the image processors use (transforms on tensors, PIL I/O) is pure Python.

It refuses to run on a torchvision whose ``__init__`` does not look as expected, so a
version bump fails the image build instead of shipping a half-patched package.

Usage: python patch_torchvision.py SITE_PACKAGES
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ORIGINAL = """from torchvision import (
    _autograd_registrations,
    _meta_registrations,
    datasets,
"""
PATCHED = """# Patched by the tenancy engine image (patch_torchvision.py): the CUDA ops of PyPI's
# build cannot load beside torch+cpu, so their fake registrations are skipped.
if extension._has_ops():
    from torchvision import _autograd_registrations, _meta_registrations  # noqa: F401
from torchvision import (
    datasets,
"""


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    package = Path(sys.argv[1]) / "torchvision"
    init = package / "__init__.py"
    text = init.read_text()
    if text.count(ORIGINAL) != 1:
        print(f"{init}: the expected import block is not there; check this torchvision release", file=sys.stderr)
        return 1
    init.write_text(text.replace(ORIGINAL, PATCHED))
    removed = sorted(path.name for path in package.glob("*.so"))
    for path in package.glob("*.so"):
        path.unlink()
    bundled = package.parent / "torchvision.libs"
    if bundled.is_dir():
        removed += sorted(path.name for path in bundled.iterdir())
        shutil.rmtree(bundled)
    print(f"patched {init}; removed {', '.join(removed) or 'no libraries'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
