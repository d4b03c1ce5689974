"""Which NVIDIA driver packages a host gets, per distribution, branch and flavour.

The nvidia_driver role installs exactly what this returns, so the choice is unit-tested
for every supported distribution without a GPU (tests/unit/test_nvidia_driver_packages.py).
"""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_nvidia_driver
short_description: The NVIDIA driver packages and apt components for a distribution, branch and flavour
version_added: "0.1.0"
description:
  - Ubuntu 22.04 / 24.04 - the distribution's datacenter (-server) driver of a branch,
    C(nvidia-driver-<branch>-server) or, for the open kernel modules,
    C(nvidia-driver-<branch>-server-open), plus DKMS and the running kernel's headers.
  - Debian 12 - C(nvidia-driver) from non-free (one branch, 535) with
    C(nvidia-kernel-dkms), C(firmware-misc-nonfree) and the running kernel's headers; or
    C(nvidia-open-kernel-dkms) for the open modules. Needs the contrib, non-free and
    non-free-firmware components, which the result lists.
  - A version pin (C(version)) is appended to the driver package as C(=<version>).
  - An unsupported distribution, release, branch or flavour raises C(AnsibleFilterError).
positional: _input, release, branch, flavor, kernel, version
options:
  _input:
    description: C(ansible_facts['distribution']), Debian or Ubuntu.
    type: str
    required: true
  release:
    description: C(ansible_facts['distribution_version']), e.g. C(12), C(22.04); Debian counts the major part only.
    type: str
    required: true
  branch:
    description: Driver branch, e.g. C(535), C(550), C(570).
    type: str
    required: true
  flavor:
    description: C(proprietary) or C(open) (NVIDIA's open GPU kernel modules; Turing and newer).
    type: str
    default: proprietary
  kernel:
    description: C(ansible_facts['kernel']), whose headers DKMS builds against.
    type: str
    required: true
  version:
    description: Exact package version of the driver package; empty for the newest of the branch.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Choose the driver packages
  ansible.builtin.set_fact:
    driver: >-
      {{ ansible_facts['distribution'] | tenancy_nvidia_driver(ansible_facts['distribution_version'],
           '550', 'proprietary', ansible_facts['kernel']) }}
"""

RETURN = r"""
_value:
  description: What to install.
  type: dict
  contains:
    packages: {description: Packages to install, in order, type: list}
    components: {description: Extra apt components the packages need (Debian), type: list}
    driver_package: {description: The package that carries the driver, type: str}
"""

SUPPORTED = {"Ubuntu": ("22.04", "24.04"), "Debian": ("12",)}
FLAVORS = ("proprietary", "open")
# The only branch Debian 12 ships (bookworm: 535.x, updated in point releases).
DEBIAN_BRANCHES = {"12": ("535",)}
BRANCH_RE = re.compile(r"^[0-9]{3}$")


def tenancy_nvidia_driver(
    distribution: Any,
    release: Any,
    branch: Any,
    flavor: Any = "proprietary",
    kernel: Any = "",
    version: Any = "",
) -> dict[str, Any]:
    """Packages (and apt components) of the NVIDIA driver for one host."""
    distribution, release, branch = str(distribution), str(release), str(branch)
    flavor, kernel, version = str(flavor), str(kernel), str(version or "")
    if distribution not in SUPPORTED:
        raise AnsibleFilterError(
            f"tenancy_nvidia_driver: distribution {distribution!r} is not supported (Debian 12, Ubuntu 22.04/24.04)"
        )
    if distribution == "Debian":
        release = release.split(".")[0]
    if release not in SUPPORTED[distribution]:
        raise AnsibleFilterError(
            f"tenancy_nvidia_driver: {distribution} {release!r} is not supported; "
            f"supported: {', '.join(SUPPORTED[distribution])}"
        )
    if not BRANCH_RE.match(branch):
        raise AnsibleFilterError(f"tenancy_nvidia_driver: branch {branch!r} is not a driver branch such as 535 or 550")
    if flavor not in FLAVORS:
        raise AnsibleFilterError(f"tenancy_nvidia_driver: flavor {flavor!r} must be one of {', '.join(FLAVORS)}")
    if not kernel:
        raise AnsibleFilterError("tenancy_nvidia_driver: kernel is empty; pass ansible_facts['kernel']")
    pin = f"={version}" if version else ""
    headers = f"linux-headers-{kernel}"

    if distribution == "Ubuntu":
        driver = f"nvidia-driver-{branch}-server" + ("-open" if flavor == "open" else "")
        return {
            "packages": ["dkms", headers, driver + pin, f"nvidia-utils-{branch}-server"],
            "components": [],
            "driver_package": driver,
        }

    if branch not in DEBIAN_BRANCHES[release]:
        raise AnsibleFilterError(
            f"tenancy_nvidia_driver: branch {branch!r} is not in Debian {release}, which ships only "
            f"{', '.join(DEBIAN_BRANCHES[release])}; set nvidia_driver_branch accordingly"
        )
    if flavor == "open":
        driver = "nvidia-open-kernel-dkms"
        kernel_module = [driver + pin, "nvidia-driver" + pin]
    else:
        driver = "nvidia-driver"
        kernel_module = ["nvidia-kernel-dkms", driver + pin]
    packages = ["dkms", headers, *kernel_module, "firmware-misc-nonfree", "nvidia-smi", "nvidia-persistenced"]
    return {"packages": packages, "components": ["contrib", "non-free", "non-free-firmware"], "driver_package": driver}


class FilterModule:
    """NVIDIA driver package selection."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_nvidia_driver": tenancy_nvidia_driver}
