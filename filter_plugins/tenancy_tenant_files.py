"""Where the files a tenant brings from the controller go on its volume, and what there
the plan no longer has (roles/tenant/tasks/files.yml)."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: tenancy_tenant_files
short_description: The layout of a tenant's own files on its volume (private model, LoRA adapters)
version_added: "0.1.0"
description:
  - C(tenancy_tenant_files) takes a plan record and the tenant's data directory on the host
    and returns the layout the tenant role makes there - C(roots), the directories it
    manages (C(model) for a private model, C(adapters)); C(dirs), every directory to create,
    parents first; C(copies), one C(src) (on the controller) and C(dest) (on the host) per
    file of the record's C(model_files) and of each adapter's C(files).
  - C(tenancy_file_leftovers) takes the paths C(ansible.builtin.find) reported under the
    roots (recursive, any type) and that layout, and returns what to delete - anything that
    is neither a file to copy nor a directory to create, top-most only (a removed adapter's
    directory, not each of its files), sorted.
positional: _input, data_dir
options:
  _input:
    description: The tenant's plan record (C(model_private), C(model), C(model_files), C(adapters)).
    type: dict
    required: true
  data_dir:
    description: The tenant's data directory on the host (C(tenant_data_dir)/<tenant>), its volume.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Copy the tenant's files from the controller
  ansible.builtin.copy:
    src: "{{ item.src }}"
    dest: "{{ item.dest }}"
    mode: "0600"
  loop: "{{ (tenant_plan | tenancy_tenant_files(data_dir)).copies }}"

- name: Delete what the plan no longer has
  ansible.builtin.file:
    path: "{{ item }}"
    state: absent
  loop: "{{ found.files | map(attribute='path') | tenancy_file_leftovers(layout) }}"
"""

RETURN = r"""
_value:
  description: The layout (tenancy_tenant_files), or the paths to delete (tenancy_file_leftovers).
  type: raw
"""

# Under the tenant's data directory, as the engine sees them under /data
# (plugin_utils/engine.PRIVATE_MODEL_DIR, plugin_utils/adapters.SUBDIR).
MODEL_SUBDIR = "model"
ADAPTERS_SUBDIR = "adapters"


def tenancy_tenant_files(record: Mapping[str, Any], data_dir: str) -> dict[str, Any]:
    """The layout: see DOCUMENTATION."""
    if not isinstance(record, Mapping) or not isinstance(data_dir, str):
        raise AnsibleFilterError("tenancy_tenant_files: expected a plan record and the tenant's data directory")
    data_dir = data_dir.rstrip("/")
    trees = []
    if record.get("model_private"):
        trees.append((record["model"], f"{data_dir}/{MODEL_SUBDIR}", record["model_files"]))
    for adapter in record.get("adapters") or []:
        trees.append((adapter["path"], f"{data_dir}/{ADAPTERS_SUBDIR}/{adapter['name']}", adapter["files"]))
    roots = [f"{data_dir}/{MODEL_SUBDIR}"] * bool(record.get("model_private")) + [f"{data_dir}/{ADAPTERS_SUBDIR}"]
    dirs, copies = list(roots), []
    for src, dest, files in trees:
        for file in files:
            parent = posixpath.dirname(f"{dest}/{file['name']}")
            while parent not in dirs and parent.startswith(dest):
                dirs.append(parent)
                parent = posixpath.dirname(parent)
            copies.append({"src": f"{src.rstrip('/')}/{file['name']}", "dest": f"{dest}/{file['name']}"})
    return {"roots": roots, "dirs": sorted(dirs, key=lambda d: (d.count("/"), d)), "copies": copies}


def tenancy_file_leftovers(paths: Sequence[str], layout: Mapping[str, Any]) -> list[str]:
    """The paths to delete: see DOCUMENTATION."""
    keep = set(layout["dirs"]) | {c["dest"] for c in layout["copies"]}
    leftovers = sorted(p.rstrip("/") for p in paths if p.rstrip("/") not in keep)
    top = []
    for path in leftovers:
        if not any(path.startswith(t + "/") for t in top):
            top.append(path)
    return top


class FilterModule:
    """A tenant's own files on its volume."""

    def filters(self) -> dict[str, Any]:
        return {"tenancy_tenant_files": tenancy_tenant_files, "tenancy_file_leftovers": tenancy_file_leftovers}
