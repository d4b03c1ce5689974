#!/usr/bin/python
"""Tell whether a tenant is exactly as its last full converge left it (the tenant role's
fast path), and record that state after a full converge."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tenancy_converge_stamp
short_description: The tenant role's record of a converged tenant, and the check against it
version_added: "0.1.0"
description:
  - With O(state=write) (at the end of a full converge of one tenant), records what the
    converge left on the host - the fingerprint of everything the controller decided (the
    plan record, the role's inputs, its code, the key's hash), each container's identity
    and configuration as C(docker inspect) shows it (id, image, start time, Config,
    HostConfig, networks), the owner, mode and SHA-256 of every file under O(trees), the
    device of every O(mounts) path and the host's boot id - in a root-only JSON file.
  - With O(state=check), compares the host with that record and returns RV(current) true
    only when nothing differs, every container runs and reports healthy (where it has a
    health check), each container still runs its image reference's current image, each
    O(mounts) path is a mount point, and no retired key in O(key_map) has expired. The
    tenant role then skips the tenant's ~60 other tasks; anything else (an edit, a
    restart or crash, a reboot, a hand-changed file, a C(docker update)) sends it down the
    full converge, which repairs it.
  - Nothing secret goes in or out - the fingerprint is a digest, and the record holds
    digests of files the host already has. The record is a cache of verified state,
    not configuration, so writing it never reports a change.
  - Supports check mode (O(state=write) then writes nothing).
options:
  path:
    description: The record's file (its directory is created, root-only).
    type: path
    required: true
  state:
    description: C(check) compares, C(write) records.
    type: str
    choices: [check, write]
    default: check
  fingerprint:
    description: Digest of what the controller decided for this tenant (filter tenancy_converge_fingerprint).
    type: str
    required: true
  containers:
    description: Container name to the image reference it must run.
    type: dict
    required: true
  trees:
    description: Files or directories (walked) whose owner, mode and content are recorded.
    type: list
    elements: path
    default: []
  mounts:
    description: Paths that must be mount points, with the same device as recorded.
    type: list
    elements: path
    default: []
  owners:
    description:
      - Paths whose own owner, group and mode are recorded, not walked (a tenant's data
        directory, too big to hash). One handed to another uid sends the tenant down the
        full converge, which hands its files back.
    type: list
    elements: path
    default: []
  key_map:
    description: The gateway's key map; a C(retired-<unix time>) entry whose time has passed makes the record stale.
    type: path
"""

RETURN = r"""
current:
  description: Whether the tenant is as the last full converge left it (O(state=check)).
  type: bool
  returned: always
reason:
  description: Why it is not current (the first difference found), or C(unchanged).
  type: str
  returned: always
"""

import hashlib  # noqa: E402 - after the documentation, as Ansible modules are laid out
import json  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# What a container's record keeps of `docker inspect`: whatever the role sets, and the
# start time (a restart, by hand or by Docker after a crash, is a reason to look again).
CONTAINER_KEYS = ("Id", "Image", "Config", "HostConfig")


class DockerMissing(Exception):
    """The docker CLI cannot be run on the host."""


def inspect(kind: str, names: list[str]) -> dict[str, dict]:
    """`docker <kind> inspect` of several objects at once; a missing one is left out."""
    found: dict[str, dict] = {}
    for name in names:
        try:
            result = subprocess.run(["docker", kind, "inspect", name], capture_output=True, text=True, check=False)
        except OSError as exc:
            raise DockerMissing(f"cannot run the docker CLI ({exc}): run site.yml in full (the docker role)") from None
        if result.returncode == 0:
            found[name] = json.loads(result.stdout)[0]
    return found


def container_digest(attrs: dict) -> str:
    kept = {key: attrs.get(key) for key in CONTAINER_KEYS}
    kept["StartedAt"] = attrs.get("State", {}).get("StartedAt")
    kept["Networks"] = sorted((attrs.get("NetworkSettings", {}).get("Networks") or {}).keys())
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def path_entry(path: str) -> list:
    st = os.lstat(path)
    if os.path.isfile(path) and not os.path.islink(path):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
        content = digest.hexdigest()
    elif os.path.islink(path):
        content = "link:" + os.readlink(path)
    else:
        content = "dir"
    return [st.st_mode, st.st_uid, st.st_gid, content]


def tree_entries(roots: list[str]) -> dict[str, list]:
    entries: dict[str, list] = {}
    for root in roots:
        if not os.path.lexists(root):
            entries[root] = ["missing"]
            continue
        entries[root] = path_entry(root)
        if os.path.isdir(root) and not os.path.islink(root):
            for top, dirs, files in os.walk(root):
                dirs.sort()
                for name in sorted(dirs + files):
                    entries[os.path.join(top, name)] = path_entry(os.path.join(top, name))
    return entries


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def observe(params: dict, containers: dict[str, dict]) -> dict:
    """The part of the host's state the record keeps."""
    return {
        "fingerprint": params["fingerprint"],
        "boot_id": boot_id(),
        "containers": {
            name: container_digest(containers[name]) if name in containers else None
            for name in sorted(params["containers"])
        },
        "trees": tree_entries(params["trees"]),
        "mounts": {path: os.stat(path).st_dev if os.path.exists(path) else None for path in params["mounts"]},
        "owners": {path: owner_of(path) for path in params["owners"]},
    }


def owner_of(path: str) -> list[int] | None:
    """[uid, gid, mode] of the path itself, or None when it does not exist."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)]


def liveness_problem(params: dict, containers: dict[str, dict]) -> str | None:
    """What is wrong now, whatever the record says."""
    images = inspect("image", sorted(set(params["containers"].values())))
    for name, image in sorted(params["containers"].items()):
        attrs = containers.get(name)
        if attrs is None:
            return f"container {name} does not exist"
        state = attrs.get("State", {})
        if not state.get("Running") or state.get("Restarting"):
            return f"container {name} is not running"
        health = (state.get("Health") or {}).get("Status")
        if health is not None and health != "healthy":
            return f"container {name} is {health}"
        if image not in images or images[image].get("Id") != attrs.get("Image"):
            return f"container {name} does not run the current image of {image}"
    for path in params["mounts"]:
        if not os.path.ismount(path):
            return f"{path} is not a mount point"
    if params.get("key_map") and os.path.exists(params["key_map"]):
        with open(params["key_map"]) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) == 2 and fields[1].startswith("retired-"):
                    try:
                        expires = int(fields[1][len("retired-") :])
                    except ValueError:
                        continue
                    if expires <= time.time():
                        return "a retired key has expired"
    return None


def first_difference(recorded: dict, now: dict) -> str | None:
    if recorded.get("fingerprint") != now["fingerprint"]:
        return "its plan, the role's inputs or code, or its key changed"
    if recorded.get("boot_id") != now["boot_id"]:
        return "the host rebooted"
    for name, digest in now["containers"].items():
        if recorded.get("containers", {}).get(name) != digest:
            return f"container {name} was recreated, restarted or reconfigured"
    # The volume (its mount, then its root's owner) before the files under it: a volume
    # handed to another uid changes every file in it too, and the root is the cause to name.
    if recorded.get("mounts") != now["mounts"]:
        return "what is mounted changed"
    for path, owner in now["owners"].items():
        if recorded.get("owners", {}).get(path) != owner:
            return f"the owner or mode of {path} changed"
    before = recorded.get("trees", {})
    changed = sorted(key for key in set(before) | set(now["trees"]) if before.get(key) != now["trees"].get(key))
    if changed:
        return f"{changed[0]} changed"
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["check", "write"], "default": "check"},
            "fingerprint": {"type": "str", "required": True, "no_log": False},
            "containers": {"type": "dict", "required": True},
            "trees": {"type": "list", "elements": "path", "default": []},
            "mounts": {"type": "list", "elements": "path", "default": []},
            "owners": {"type": "list", "elements": "path", "default": []},
            "key_map": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        containers = inspect("container", sorted(params["containers"]))
        now = observe(params, containers)
    except DockerMissing as exc:
        module.fail_json(msg=str(exc))
    path = params["path"]
    if params["state"] == "write":
        if not module.check_mode:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            partial = f"{path}.tmp"
            with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
                json.dump(now, handle, sort_keys=True)
            os.replace(partial, path)
        module.exit_json(changed=False, current=True, reason="recorded")
    try:
        with open(path) as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        module.exit_json(changed=False, current=False, reason="no record of a converge yet")
    try:
        reason = liveness_problem(params, containers) or first_difference(recorded, now)
    except DockerMissing as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, current=reason is None, reason=reason or "unchanged")


if __name__ == "__main__":
    main()
