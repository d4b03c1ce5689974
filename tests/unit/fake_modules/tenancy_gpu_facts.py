#!/usr/bin/python
"""A FAKE of library/tenancy_gpu_facts.py for tests/unit/test_gpu_host_refusal.py: a host
with an NVIDIA GPU on the PCI bus whose NVML cannot be read (no driver loaded yet). It
stands in for the GPU only; the playbooks around it run unchanged."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec={"nvml_path": {"type": "path"}, "fail_if_unreadable": {"type": "bool", "default": False}},
        supports_check_mode=True,
    )
    facts = {
        "available": False,
        "reason": "NVML did not start: Driver Not Loaded",
        "driver_version": None,
        "cuda_version": None,
        "gpus": [],
        "nvidia_pci_devices": ["0000:17:00.0"],
    }
    module.exit_json(changed=False, ansible_facts={"tenancy_gpu_facts": facts})


if __name__ == "__main__":
    main()
