"""The checks of the infra suite as plain functions: each takes what was observed
(`docker inspect` JSON, a file mode, a text) and what the plan expects, and returns the
problems it found (empty: the check holds). tests/infra/ asserts on them, and
tests/infra/plant_breaks.py proves each one reports a planted break."""

from __future__ import annotations

import math

DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd")


def expected_mounts(tenant: dict, role: str, defaults: dict) -> dict[str, tuple[str, bool]]:
    """Destination -> (host source, read-only) of everything a tenant's container may mount.
    An MPS tenant's engine also mounts its GPU's MPS pipe directory at the same path
    (roles/nvidia_mps: <nvidia_mps_pipe_root>/<gpu>), read-write: clients talk to the
    control daemon through it."""
    if role == "engine":
        mounts = {m["target"]: (m["source"], True) for m in tenant["model_mounts"]}
        mounts["/data"] = (f"{defaults['tenant_data_dir']}/{tenant['name']}", False)
        if tenant.get("mode") == "mps":
            pipe_dir = f"{defaults['nvidia_mps_pipe_root']}/{tenant['gpu']}"
            mounts[pipe_dir] = (pipe_dir, False)
        return mounts
    return {"/usr/local/etc/haproxy": (f"{tenant['names']['config_dir']}/gateway", True)}


# --- hardening -------------------------------------------------------------------------


def non_root(attrs: dict) -> list[str]:
    user = attrs["Config"]["User"]
    return [] if user.split(":")[0] not in ("", "0", "root") else [f"runs as root (User {user!r})"]


def read_only_rootfs(attrs: dict) -> list[str]:
    return [] if attrs["HostConfig"]["ReadonlyRootfs"] else ["root filesystem is writable"]


def cap_drop_all(attrs: dict) -> list[str]:
    host = attrs["HostConfig"]
    problems = [] if host["CapDrop"] == ["ALL"] else [f"CapDrop is {host['CapDrop']}, not [ALL]"]
    if host.get("CapAdd"):
        problems.append(f"CapAdd {host['CapAdd']}")
    if host.get("Privileged"):
        problems.append("privileged")
    return problems


def no_new_privileges(attrs: dict) -> list[str]:
    options = attrs["HostConfig"]["SecurityOpt"] or []
    return [] if any(o.startswith("no-new-privileges") for o in options) else [f"SecurityOpt {options}"]


def no_docker_socket(attrs: dict) -> list[str]:
    return [
        f"mounts {m.get('Source')}"
        for m in attrs["Mounts"]
        if any(m.get("Source", "").startswith(s) for s in DOCKER_SOCKETS) or "docker.sock" in m.get("Source", "")
    ]


def only_expected_mounts(attrs: dict, expected: dict[str, tuple[str, bool]]) -> list[str]:
    """No host path beyond the expected ones; read-only where expected. tmpfs is fine."""
    problems = []
    for mount in attrs["Mounts"]:
        if mount["Type"] == "tmpfs":
            continue
        want = expected.get(mount["Destination"])
        if want is None or mount.get("Source") != want[0]:
            problems.append(f"unexpected mount {mount.get('Source')} -> {mount['Destination']}")
        elif want[1] and mount.get("RW"):
            problems.append(f"{mount['Destination']} is writable, must be read-only")
    return problems


def limits_set(attrs: dict) -> list[str]:
    host = attrs["HostConfig"]
    problems = [] if host["Memory"] and host["Memory"] > 0 else ["no memory limit"]
    if not host["PidsLimit"] or host["PidsLimit"] <= 0:
        problems.append("no pids limit")
    return problems


def logs_bounded(attrs: dict) -> list[str]:
    """The container's own log is capped: json-file needs max-size (not -1) and max-file,
    set on the container (a daemon.json default would show here too, merged in by
    Docker; the role sets them itself). local caps by default; none keeps nothing."""
    log = attrs["HostConfig"]["LogConfig"]
    driver, options = log["Type"], log.get("Config") or {}
    if driver in ("none", "local"):
        return [] if options.get("max-size", "1") != "-1" else [f"{driver} log with max-size -1"]
    if driver != "json-file":
        return [f"log driver {driver}: not bounded on the host by Docker"]
    problems = []
    if options.get("max-size", "-1") == "-1":
        problems.append(f"json-file log without a size cap (max-size {options.get('max-size')!r})")
    if not options.get("max-file"):
        problems.append("json-file log without max-file")
    return problems


HARDENING = {
    "non_root": non_root,
    "read_only_rootfs": read_only_rootfs,
    "cap_drop_all": cap_drop_all,
    "no_new_privileges": no_new_privileges,
    "no_docker_socket": no_docker_socket,
    "limits_set": limits_set,
    "logs_bounded": logs_bounded,
}


# --- network -------------------------------------------------------------------------


def engine_network(attrs: dict, tenant: dict, internal: bool) -> list[str]:
    """The engine joins only its tenant's network, which is internal, and publishes nothing."""
    problems = []
    networks = sorted(attrs["NetworkSettings"]["Networks"])
    if networks != [tenant["names"]["network"]]:
        problems.append(f"engine networks {networks}, want only {tenant['names']['network']}")
    if not internal:
        problems.append(f"network {tenant['names']['network']} is not internal")
    if attrs["HostConfig"]["PortBindings"]:
        problems.append(f"engine publishes {attrs['HostConfig']['PortBindings']}")
    return problems


def engine_open_to_local_user(tenant: str, bridge: str, route: str, status: int, body: str) -> list[str]:
    """What an unprivileged user on the engine's host got from the engine; empty is good.

    `route` is `ip -o route get <engine address>` on the host, `status` and `body` the
    answer to a keyless GET <engine>:8000/v1/models made as that user (status 0: no
    connection). A route through the tenant's bridge means the host has an address on the
    internal network, i.e. a way in (roles/tenant/tasks/network.yml, inhibit_ipv4); a
    model list is the engine itself answering. Anything else on the route (the host's
    default gateway, a proxy on it) is not the engine."""
    problems = []
    if f" dev {bridge} " in f" {route.strip()} ":
        problems.append(f"{tenant}: the host routes to the engine through the internal bridge ({route.strip()})")
    if status == 200 and '"object":"list"' in body.replace(" ", ""):
        problems.append(f"{tenant}: an unprivileged local user read the engine's /v1/models with no key")
    return problems


def prometheus_stoppable(host: str, statuses: dict[str, int]) -> list[str]:
    """What POST /-/quit and /-/reload on a host's Prometheus did for an unprivileged local
    user; empty is good. A 2xx means the lifecycle API acted (Prometheus stops on /-/quit,
    and every tenant's metering with it); no answer at all means there was nothing to
    check, which is a problem too (the probe must have reached a running Prometheus)."""
    problems = []
    for path, status in sorted(statuses.items()):
        if status == 0:
            problems.append(f"{host}: Prometheus did not answer POST {path} (it stopped, or never ran there)")
        elif 200 <= status < 300:
            problems.append(f"{host}: a local user's POST {path} got {status}: the lifecycle API is on")
    if sorted(statuses) != ["/-/quit", "/-/reload"]:
        problems.append(f"{host}: probed {sorted(statuses)}, want /-/quit and /-/reload")
    return problems


def tenant_ownership(tenant: dict, view: dict, neighbours: dict[str, str]) -> list[str]:
    """Whether a tenant's engine and files are its own uid's (the plan's ``uid``), on its
    host as infra_env.ownership_view saw it: the engine's user, the files of its volume
    that belong to anyone else (``strays``), the host account that holds the uid, if any.
    ``neighbours``: the engine users of the host's other tenants (MPS GPU-mates left out:
    they share their GPU's uid by design). Empty is good."""
    name, uid = tenant["name"], tenant["uid"]
    want = f"{uid}:{uid}"
    problems = []
    if view["engine_user"] != want:
        problems.append(f"{name}: the engine runs as {view['engine_user']!r}, want its own uid {want}")
    for other, user in sorted(neighbours.items()):
        if user == view["engine_user"]:
            problems.append(f"{name}: its engine runs as {user}, as tenant {other}'s does")
    strays = view["strays"]
    if strays:
        shown = ", ".join(strays[:5]) + (f" and {len(strays) - 5} more" if len(strays) > 5 else "")
        problems.append(f"{name}: {len(strays)} file(s) of its volume are not {want}'s: {shown}")
    if view["account"]:
        problems.append(f"{name}: uid {uid} is a host account ({view['account']}), which would own its files")
    return problems


RETIRED_KEY_WANT = {
    "expired": (401, "a key whose grace ended a second ago was let in"),
    "ending": (200, "a key inside its grace was refused"),
    "ending_after": (401, "a key still worked after its grace ended, with no run in between"),
    "control": (
        200,
        "a key with an hour of grace left was refused: the map entries did not take, so the 401s prove nothing",
    ),
}


def retired_key_outlives_grace(tenant: str, statuses: dict[str, int]) -> list[str]:
    """What a tenant's gateway answered throwaway keys put in its live key map as retired
    (infra_env.retired_key_statuses): one expired, one that expires while the check waits
    (asked before and after), one with an hour left. Empty is good: the grace ends at
    its time, at request time, with no playbook run."""
    problems = []
    for name, (want, meaning) in RETIRED_KEY_WANT.items():
        got = statuses.get(name)
        if got != want:
            problems.append(f"{tenant}: {meaning} (got {got}, want {want})")
    return problems


def wire_exposure(tenant: str, view: dict) -> list[str]:
    """What a client on the network got from the tenant's port (infra_env.wire_view):
    the answer to a plain HTTP request, and the result of a TLS handshake that trusts only
    the bundle CA and checks the name. Empty is good: no plain HTTP answer, and a
    verified TLS 1.2+ session."""
    problems = []
    if view["plain"].startswith(b"HTTP/"):
        problems.append(
            f"{tenant}: the port answers plain HTTP ({view['plain'][:40]!r}): keys and prompts cross in the clear"
        )
    if view["tls"] not in ("TLSv1.2", "TLSv1.3"):
        problems.append(f"{tenant}: no verified TLS session with the bundle CA ({view['tls']})")
    return problems


def gateway_network(attrs: dict, tenant: dict, metrics_address: str = "127.0.0.1") -> list[str]:
    """The gateway joins its tenant's two networks and publishes exactly the tenant's port
    and, on the metrics address only (the loopback), its operator-only metrics port."""
    problems = []
    want = {
        "8080/tcp": [{"HostIp": tenant["bind_address"], "HostPort": str(tenant["port"])}],
        "9101/tcp": [{"HostIp": metrics_address, "HostPort": str(tenant["metrics_port"])}],
    }
    if attrs["HostConfig"]["PortBindings"] != want:
        problems.append(f"gateway publishes {attrs['HostConfig']['PortBindings']}, want {want}")
    networks = sorted(attrs["NetworkSettings"]["Networks"])
    if networks != sorted([tenant["names"]["network"], tenant["names"]["edge_network"]]):
        problems.append(f"gateway networks {networks}")
    return problems


def gateway_cpuset(attrs: dict, tenant: dict) -> list[str]:
    """The gateway runs on its tenant's cpuset (CPU tenants; GPU tenants have none), so
    what traffic to the tenant's port costs HAProxy comes out of that tenant's cores."""
    want, got = tenant.get("cpuset") or "", attrs["HostConfig"].get("CpusetCpus") or ""
    return [] if got == want else [f"gateway runs on cpuset {got!r}, want its tenant's {want!r}"]


def config_loaded(state: str, container: str) -> list[str]:
    """`state` is what roles/tenant/files/gateway_loaded.sh printed in the gateway."""
    state = state.strip()
    return [] if state == "loaded" else [f"{container} runs an older config than its file ({state!r})"]


def refused_log_lines(lines: int, refused: int, seconds: float, cap: int) -> list[str]:
    """A flood of `refused` requests the gateway refused itself, sent in `seconds`, may
    leave at most `cap` log lines per second it lasted (each second begun, plus one),
    and at least one: a gateway that logs nothing at all is not bounded, it is broken."""
    bound = cap * (math.ceil(seconds) + 1)
    if lines > bound:
        return [f"{lines} log lines for {refused} refused requests in {seconds:.1f} s (cap {cap}/s allows {bound})"]
    return [] if lines > 0 else [f"no log line for {refused} refused requests: is the gateway logging at all?"]


def foreign_data_mounts(attrs: dict, tenant: dict, data_dir: str) -> list[str]:
    """Mounts of any data directory other than the tenant's own."""
    own = f"{data_dir}/{tenant['name']}"
    return [
        f"mounts {m['Source']}"
        for m in attrs["Mounts"]
        if m.get("Source", "").startswith(data_dir + "/") and m["Source"] != own
    ]


def _within(path: str, directory: str) -> bool:
    """path is directory or somewhere under it."""
    directory = directory.rstrip("/")
    return path == directory or path.startswith(directory + "/")


def foreign_model_mounts(attrs: dict, tenant: dict, others: list[dict], models_dir: str) -> list[str]:
    """What of the host's model store a tenant's container mounts beyond its own model
    (the plan's model_mounts): the store itself or a directory above it (every tenant's
    models), another tenant's model, or any other part of the store. A model both
    tenants share (one base model, one copy per host) is not another tenant's."""
    own = {m["source"] for m in tenant.get("model_mounts", [])}
    problems = []
    for mount in attrs["Mounts"]:
        source = mount.get("Source", "")
        if mount["Type"] != "bind" or source in own:
            continue
        if _within(models_dir, source):
            problems.append(f"mounts {source} at {mount['Destination']}, which holds every tenant's models")
            continue
        reached = sorted(
            o["name"]
            for o in others
            for m in o.get("model_mounts", [])
            if m["source"] not in own and (_within(m["source"], source) or _within(source, m["source"]))
        )
        if reached:
            problems.append(f"mounts {source} at {mount['Destination']}, the model of {', '.join(reached)}")
        elif _within(source, models_dir):
            problems.append(f"mounts {source} at {mount['Destination']}, a part of the model store not its own")
    return problems


# --- gateway behaviour ------------------------------------------------------------------

HIDDEN_PATHS = (
    "/metrics",
    "/engine/metrics",
    "/tokenize",
    "/pause",
    "/version",
    "/invocations",
    "/load",
    "/",
    "/v1/../tokenize",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
)


# The body of the gateway's own 404 (roles/tenant/templates/haproxy.cfg.j2, its path
# rule; tests/unit/test_harness_checks.py keeps the two the same). vLLM's own 404 says
# {"detail":"Not Found"}: a path the engine happens to refuse today (the runtime LoRA
# routes, off unless VLLM_ALLOW_RUNTIME_LORA_UPDATING is set) is hidden only when the
# gateway refuses it itself.
GATEWAY_NOT_FOUND = '{"error":{"message":"Not Found","type":"not_found_error","code":404}}'


def exposed_paths(answers: dict[str, tuple[int, str]]) -> list[str]:
    """Paths outside /v1 and /health that the gateway did not refuse itself: any other
    status, or a 404 from behind it (the request reached the engine)."""
    problems = []
    for path, (status, body) in answers.items():
        if status != 404:
            problems.append(f"{path} -> {status}")
        elif body.strip() != GATEWAY_NOT_FOUND:
            problems.append(f"{path} -> 404 from behind the gateway ({body.strip()[:80]!r}), not the gateway's own")
    return problems


def foreign_key_accepted(status: int, source: str, target: str) -> list[str]:
    return [] if status == 401 else [f"{source}'s key on {target} got {status}, want 401"]


# --- secrets -----------------------------------------------------------------------------


def private_file(mode: int, path: str) -> list[str]:
    return [] if mode & 0o777 == 0o600 else [f"{path} has mode {mode & 0o777:04o}, want 0600"]


def leaks(secret: str, text: str, where: str) -> list[str]:
    return [f"the key appears in {where}"] if secret and secret in text else []


# --- volumes -----------------------------------------------------------------------------


def private_dir(mode: int, owner: str, path: str, want_owner: str) -> list[str]:
    problems = [] if mode & 0o777 == 0o700 else [f"{path} has mode {mode & 0o777:04o}, want 0700"]
    if owner != want_owner:
        problems.append(f"{path} is owned by {owner}, want {want_owner}")
    return problems


def volume_marking(listing: str, tenant: str, encrypted: bool) -> list[str]:
    """tenants-list must say 'luks open' for encrypted volumes and 'NOT ENCRYPTED' otherwise."""
    want = "luks open" if encrypted else "NOT ENCRYPTED"
    lines = listing.splitlines()
    # The table after its header (the plan table printed earlier has rows per tenant too).
    headers = [i for i, line in enumerate(lines) if line.split()[:1] == ["TENANT"] and "VOLUME" in line]
    rows = [line for line in lines[headers[-1] if headers else 0 :] if line.split()[:1] == [tenant]]
    if not rows:
        return [f"tenants-list has no row for {tenant}"]
    return [] if rows[0].rstrip().endswith(want) else [f"tenants-list row of {tenant} does not end in {want!r}"]


def luks_active(cryptsetup_status: str, mount_source: str, mapper: str) -> list[str]:
    """Where encryption is on: the mapping is active and it is what is mounted."""
    problems = [] if "is active" in cryptsetup_status else [f"{mapper} is not active"]
    if mount_source.strip() != f"/dev/mapper/{mapper}":
        problems.append(f"the data directory is mounted from {mount_source.strip() or 'nothing'}, not {mapper}")
    return problems


def engine_data_on_volume(mountinfo: str, mapper: str) -> list[str]:
    """Where encryption is on: the filesystem the engine sees at /data (its own
    /proc/self/mountinfo) comes from the tenant's LUKS mapping, not from the bare
    directory under the host's mount point."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/data" and " - " in line:
            source = line.split(" - ", 1)[1].split()[1]
            if source == f"/dev/mapper/{mapper}":
                return []
            return [f"the engine's /data comes from {source}, not /dev/mapper/{mapper}"]
    return ["the engine has no /data mount"]
