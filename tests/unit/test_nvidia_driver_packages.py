"""tenancy_nvidia_driver: the packages the nvidia_driver role installs, for every supported distribution."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_nvidia_driver import tenancy_nvidia_driver

KERNEL = "6.1.0-40-amd64"


@pytest.mark.parametrize(
    ("distribution", "release", "branch", "flavor", "version", "packages", "components"),
    [
        (
            "Ubuntu",
            "22.04",
            "535",
            "proprietary",
            "",
            ["dkms", f"linux-headers-{KERNEL}", "nvidia-driver-535-server", "nvidia-utils-535-server"],
            [],
        ),
        (
            "Ubuntu",
            "24.04",
            "570",
            "open",
            "",
            ["dkms", f"linux-headers-{KERNEL}", "nvidia-driver-570-server-open", "nvidia-utils-570-server"],
            [],
        ),
        (
            "Ubuntu",
            "24.04",
            "550",
            "proprietary",
            "550.163.01-0ubuntu0.24.04.1",
            [
                "dkms",
                f"linux-headers-{KERNEL}",
                "nvidia-driver-550-server=550.163.01-0ubuntu0.24.04.1",
                "nvidia-utils-550-server",
            ],
            [],
        ),
        (
            "Debian",
            "12",
            "535",
            "proprietary",
            "",
            [
                "dkms",
                f"linux-headers-{KERNEL}",
                "nvidia-kernel-dkms",
                "nvidia-driver",
                "firmware-misc-nonfree",
                "nvidia-smi",
                "nvidia-persistenced",
            ],
            ["contrib", "non-free", "non-free-firmware"],
        ),
        (
            "Debian",
            "12.11",
            "535",
            "open",
            "535.247.01-1~deb12u1",
            [
                "dkms",
                f"linux-headers-{KERNEL}",
                "nvidia-open-kernel-dkms=535.247.01-1~deb12u1",
                "nvidia-driver=535.247.01-1~deb12u1",
                "firmware-misc-nonfree",
                "nvidia-smi",
                "nvidia-persistenced",
            ],
            ["contrib", "non-free", "non-free-firmware"],
        ),
    ],
    ids=["ubuntu22-535", "ubuntu24-570-open", "ubuntu24-pinned", "debian12", "debian12-open-pinned"],
)
def test_packages_per_distribution(distribution, release, branch, flavor, version, packages, components):
    result = tenancy_nvidia_driver(distribution, release, branch, flavor, KERNEL, version)
    assert result["packages"] == packages
    assert result["components"] == components
    assert any(p.startswith(result["driver_package"]) for p in result["packages"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Fedora", "40", "550", "proprietary", KERNEL), "distribution 'Fedora' is not supported"),
        (("Ubuntu", "20.04", "550", "proprietary", KERNEL), "Ubuntu '20.04' is not supported"),
        (("Debian", "11", "535", "proprietary", KERNEL), "Debian '11' is not supported"),
        (("Debian", "12", "550", "proprietary", KERNEL), "ships only 535"),
        (("Ubuntu", "24.04", "latest", "proprietary", KERNEL), "'latest' is not a driver branch"),
        (("Ubuntu", "24.04", "550", "beta", KERNEL), "flavor 'beta' must be one of"),
        (("Ubuntu", "24.04", "550", "proprietary", ""), "kernel is empty"),
    ],
)
def test_unsupported_input_is_refused_by_name(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        tenancy_nvidia_driver(*args)
