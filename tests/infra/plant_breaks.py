"""Prove that every check of the infra suite catches the break it exists for.

For each break: plant it, run the same check function the suite runs, expect it to
report a problem, restore, and (for breaks planted on real objects) expect the check
to hold again. Where possible the break is planted on a throwaway copy of a tenant's
container (`docker create`, never started) instead of the real one.

  TENANCY_INVENTORY=inventory/local python tests/infra/plant_breaks.py [NAME...]
  (make test-infra-planted)

Exits non-zero when any check missed its break or did not recover. tests/infra/README.md
lists the breaks.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "tests" / "lib")]

import checks  # noqa: E402 - after the path set-up above
from gateway_probe import path_answers, raw_status  # noqa: E402
from infra_env import (  # noqa: E402
    INVENTORY,
    data_dir,
    docker_on,
    engine_url,
    expected_mounts,
    flood_refused,
    gateway_config_state,
    host_address_on_bridge,
    infra_host,
    key_leaks_in_docker,
    lifecycle_statuses,
    local_user_view,
    luks_problems,
    model_exposure,
    neighbour_users,
    ownership_view,
    plan,
    playbook_output,
    prometheus_with_lifecycle,
    reload_gateway,
    retired_key_statuses,
    setting,
    wire_view,
)
from isolation import pair_breaches  # noqa: E402
from tenancy_inventory import api_key, base_url, key_file  # noqa: E402


@dataclass(frozen=True)
class Break:
    name: str
    proves: str  # the test in tests/infra that runs this check
    plant: Callable[[dict, dict], Iterator[list[str]]]  # yields the problems the check reported


def copy_flags(attrs: dict) -> list[str]:
    """`docker create` flags reproducing a container's hardening, mounts and network."""
    host, config = attrs["HostConfig"], attrs["Config"]
    flags = ["--user", config["User"], "--memory", str(host["Memory"]), "--pids-limit", str(host["PidsLimit"])]
    flags += ["--read-only"] if host["ReadonlyRootfs"] else []
    for cap in host["CapDrop"] or []:
        flags += ["--cap-drop", cap]
    for option in host["SecurityOpt"] or []:
        flags += ["--security-opt", option]
    for mount in attrs["Mounts"]:
        if mount["Type"] == "bind":
            flags += ["--mount", f"type=bind,src={mount['Source']},dst={mount['Destination']}"]
            flags[-1] += "" if mount["RW"] else ",readonly"
    flags += ["--cpuset-cpus", host["CpusetCpus"]] if host.get("CpusetCpus") else []
    log = host["LogConfig"]
    flags += ["--log-driver", log["Type"]]
    for option, value in (log.get("Config") or {}).items():
        flags += ["--log-opt", f"{option}={value}"]
    return [*flags, "--network", host["NetworkMode"]]


def without(flags: list[str], flag: str) -> list[str]:
    """The flags without every `flag VALUE` pair (or bare `flag`)."""
    result, skip = [], False
    for index, item in enumerate(flags):
        if skip:
            skip = False
            continue
        if item == flag:
            skip = index + 1 < len(flags) and not flags[index + 1].startswith("--") and flag != "--read-only"
            continue
        result.append(item)
    return result


@contextlib.contextmanager
def throwaway(tenant: dict, role: str, change: Callable[[list[str]], list[str]], label: str = "") -> Iterator[dict]:
    """A created-but-never-started copy of a tenant's container with one change; removed after."""
    docker = docker_on(tenant)
    original = docker.container(tenant["names"][role])
    name = f"tenancy-planted-{tenant['name']}-{role}"
    flags = change(copy_flags(original))
    labels = ["--label", f"tenancy.tenant={tenant['name']}"] if label == "tenant" else []
    host = infra_host(tenant["host"])
    host.run("docker rm -f %s", name)
    argv = ["--name", name, *labels, *flags, "--entrypoint", "true", original["Config"]["Image"]]
    host.check_output("docker create " + " ".join(["%s"] * len(argv)), *argv)
    try:
        yield docker.container(name)
    finally:
        host.run("docker rm -f %s", name)


# --- the breaks -----------------------------------------------------------------------


def engine_joins_other_network(a: dict, b: dict) -> Iterator[list[str]]:
    docker = docker_on(a)
    host = infra_host(a["host"])
    host.check_output("docker network connect %s %s", b["names"]["network"], a["names"]["engine"])
    try:
        yield pair_breaches(docker, a, b)
    finally:
        host.run("docker network disconnect %s %s", b["names"]["network"], a["names"]["engine"])
    yield pair_breaches(docker, a, b)


class NotApplicable(Exception):
    """The inventory has nothing this break can be planted on (said, not counted)."""


def engine_reaches_another_host(a: dict, _b: dict) -> Iterator[list[str]]:
    """The engine joined to its tenant's edge network (a bridge with a route out): it then
    reaches a tenant of another host at that host's address."""
    other = next((t for t in plan() if t["host"] != a["host"]), None)
    if other is None:
        raise NotApplicable("every tenant is on one host")
    docker, host = docker_on(a), infra_host(a["host"])
    host.check_output("docker network connect %s %s", a["names"]["edge_network"], a["names"]["engine"])
    try:
        yield pair_breaches(docker, a, other, docker_on(other))
    finally:
        host.run("docker network disconnect %s %s", a["names"]["edge_network"], a["names"]["engine"])
    yield pair_breaches(docker, a, other, docker_on(other))


def engine_publishes_port(a: dict, _b: dict) -> Iterator[list[str]]:
    internal = docker_on(a).network(a["names"]["network"])["Internal"]
    with throwaway(a, "engine", lambda f: [*f, "--publish", "127.0.0.1:39999:8000"]) as attrs:
        yield checks.engine_network(attrs, a, internal)


def gateway_ports(a: dict, metrics_address: str = "127.0.0.1") -> list[str]:
    """The gateway's own publish flags: the tenant's port, the metrics port."""
    return [
        "--publish",
        f"{a['bind_address']}:{a['port']}:8080",
        "--publish",
        f"{metrics_address}:{a['metrics_port']}:9101",
    ]


def gateway_publishes_admin_port(a: dict, _b: dict) -> Iterator[list[str]]:
    def change(flags: list[str]) -> list[str]:
        return [*flags, *gateway_ports(a), "--publish", "127.0.0.1:39998:8404"]

    with throwaway(a, "gateway", change) as attrs:
        # The copy has only the edge network: also reported, but the port is what is planted.
        yield [p for p in checks.gateway_network(attrs, a) if "publishes" in p]


def metrics_port_on_every_address(a: dict, _b: dict) -> Iterator[list[str]]:
    """The operator-only metrics port published on 0.0.0.0: reachable from the network."""
    with throwaway(a, "gateway", lambda flags: [*flags, *gateway_ports(a, "0.0.0.0")]) as attrs:
        yield [p for p in checks.gateway_network(attrs, a) if "publishes" in p]


def gateway_on_other_tenants_cores(a: dict, b: dict) -> Iterator[list[str]]:
    """The gateway of tenant a moved onto b's cores: a flood on a's port would spend them."""
    if not b.get("cpuset") or b.get("cpuset") == a.get("cpuset"):
        raise NotApplicable("the two tenants have no cpusets of their own")

    def change(flags: list[str]) -> list[str]:
        return [*without(flags, "--cpuset-cpus"), "--cpuset-cpus", b["cpuset"], *gateway_ports(a)]

    with throwaway(a, "gateway", change) as attrs:
        yield checks.gateway_cpuset(attrs, a)


@contextlib.contextmanager
def gateway_config(a: dict, edit: Callable[[str], str]) -> Iterator[None]:
    """The real gateway of tenant a running an edited config; the original back after."""
    host = infra_host(a["host"])
    path = f"{a['names']['config_dir']}/gateway/haproxy.cfg"
    original = host.check_output("cat %s", path) + "\n"
    host.check_output("printf %%s %s > %s", edit(original), path)
    reload_gateway(a)
    try:
        yield
    finally:
        host.check_output("printf %%s %s > %s", original, path)
        reload_gateway(a)


def gateway_speaks_plain_http(a: dict, _b: dict) -> Iterator[list[str]]:
    """A's real gateway reloaded with its tenant port bound without TLS: keys and prompts
    would cross the network in the clear. The original config back and reloaded after."""

    def plain(config: str) -> str:
        lines = [line for line in config.splitlines() if line.strip().startswith("bind :8080 ssl ")]
        assert len(lines) == 1, "the gateway config has no TLS bind on the tenant port to take out"
        return config.replace(lines[0], "    bind :8080")

    with gateway_config(a, plain):
        yield checks.wire_exposure(a["name"], wire_view(a))
    yield checks.wire_exposure(a["name"], wire_view(a))


def gateway_config_not_loaded(a: dict, _b: dict) -> Iterator[list[str]]:
    """A config written and never loaded (a run stopped before its reload): here, the
    file touched after the running worker started."""
    host = infra_host(a["host"])
    time.sleep(1.1)
    host.check_output("touch %s", f"{a['names']['config_dir']}/gateway/haproxy.cfg")
    try:
        yield checks.config_loaded(gateway_config_state(a), a["names"]["gateway"])
    finally:
        reload_gateway(a)
    yield checks.config_loaded(gateway_config_state(a), a["names"]["gateway"])


def every_refused_request_logged(a: dict, _b: dict) -> Iterator[list[str]]:
    """The gateway without its log cap: one line per refused request."""
    cap = setting(a["host"], "tenant_gateway_log_refused_rate")

    def uncapped(config: str) -> str:
        return "\n".join(line for line in config.splitlines() if "set-log-level silent" not in line) + "\n"

    with gateway_config(a, uncapped):
        lines, refused, seconds = flood_refused(a)
        yield checks.refused_log_lines(lines, refused, seconds, cap)
    lines, refused, seconds = flood_refused(a)
    yield checks.refused_log_lines(lines, refused, seconds, cap)


def retired_key_kept_until_a_run(a: dict, _b: dict) -> Iterator[list[str]]:
    """A's real gateway asking only whether a key is in its map (the old rule: a retired
    key worked until a run removed it); the original config back and reloaded after."""

    def no_expiry(config: str) -> str:
        rule = "    acl key_in_grace var(txn.key_id),field(2,-),sub(txn.now) -m int gt 0"
        assert rule in config.splitlines(), "the gateway config has no request-time expiry rule to take out"
        return config.replace(rule, "    acl key_in_grace var(txn.key_id) -m beg retired-")

    with gateway_config(a, no_expiry):
        yield checks.retired_key_outlives_grace(a["name"], retired_key_statuses(a))
    yield checks.retired_key_outlives_grace(a["name"], retired_key_statuses(a))


def host_on_internal_bridge(a: dict, _b: dict) -> Iterator[list[str]]:
    """The host given its address on A's internal bridge (Docker's default without
    inhibit_ipv4): a local user routes in and reads A's engine with no key."""
    with host_address_on_bridge(a):
        yield local_user_view(a)
    yield local_user_view(a)


def prometheus_lifecycle_on(a: dict, _b: dict) -> Iterator[list[str]]:
    """A copy of A's host's Prometheus with --web.enable-lifecycle: a local user stops it."""
    if not bool(setting(a["host"], "tenancy_monitoring")):
        raise NotApplicable(f"{a['host']} runs no Prometheus (tenancy_monitoring false)")
    with prometheus_with_lifecycle(a["host"]) as address:
        yield checks.prometheus_stoppable(a["host"], lifecycle_statuses(a["host"], address))
    address = setting(a["host"], "monitoring_listen_address")
    yield checks.prometheus_stoppable(a["host"], lifecycle_statuses(a["host"], address))


def gateway_forwards_every_path(a: dict, _b: dict) -> Iterator[list[str]]:
    """The check pointed at the engine itself, i.e. a gateway that forwards everything."""
    with engine_url(a) as url:
        problems = checks.exposed_paths(path_answers(url, api_key(INVENTORY, a["name"])))
    yield problems


def gateway_forwards_lora_routes(a: dict, _b: dict) -> Iterator[list[str]]:
    """A's real gateway reloaded with the runtime LoRA routes taken out of its 404 rule
    (the gateway before issue #29): a load_lora_adapter request reaches A's engine. The
    engine refuses it too today (runtime LoRA updating is off), with its own 404; the
    check wants the gateway's. The original config back and reloaded after."""

    def forwards_lora(config: str) -> str:
        rule = " if odd_path or lora_admin or !is_health !is_api"
        assert config.count(rule) == 1, "the gateway config has no LoRA-route refusal to take out"
        return config.replace(rule, " if odd_path or !is_health !is_api")

    key = api_key(INVENTORY, a["name"])
    with gateway_config(a, forwards_lora):
        # Only what this break exposes counts as catching it.
        problems = checks.exposed_paths(path_answers(base_url(a), key))
        yield [problem for problem in problems if "_lora_adapter" in problem]
    yield checks.exposed_paths(path_answers(base_url(a), key))


def engine_accepts_foreign_key(a: dict, b: dict) -> Iterator[list[str]]:
    """The check pointed at the engine itself, i.e. a gateway that checks no key."""
    with engine_url(a) as url:
        status = raw_status(url, "/v1/models", api_key(INVENTORY, b["name"]))
    yield checks.foreign_key_accepted(status, b["name"], a["name"])


def mounts_other_tenants_volume(a: dict, b: dict) -> Iterator[list[str]]:
    with throwaway(a, "engine", lambda f: [*f, "--mount", f"type=bind,src={data_dir(b)},dst=/other"]) as attrs:
        yield checks.foreign_data_mounts(attrs, a, setting(a["host"], "tenant_data_dir"))


def hardening_break(check: str, change: Callable[[list[str]], list[str]]) -> Callable:
    def plant(a: dict, _b: dict) -> Iterator[list[str]]:
        with throwaway(a, "engine", change) as attrs:
            yield checks.HARDENING[check](attrs)

    return plant


def mounts_host_path(a: dict, _b: dict) -> Iterator[list[str]]:
    with throwaway(a, "engine", lambda f: [*f, "--mount", "type=bind,src=/etc,dst=/hostetc,readonly"]) as attrs:
        yield checks.only_expected_mounts(attrs, expected_mounts(a, "engine"))


def models_writable(a: dict, _b: dict) -> Iterator[list[str]]:
    target = a["model_mounts"][0]["target"]

    def change(flags: list[str]) -> list[str]:
        return [f.replace(f",dst={target},readonly", f",dst={target}") for f in flags]

    with throwaway(a, "engine", change) as attrs:
        yield checks.only_expected_mounts(attrs, expected_mounts(a, "engine"))


def model_store_mounted(a: dict, _b: dict) -> Iterator[list[str]]:
    """The old engine: the whole model store at /models instead of its own model."""
    store = setting(a["host"], "tenancy_models_dir")

    def change(flags: list[str]) -> list[str]:
        own = {f"type=bind,src={m['source']},dst={m['target']},readonly" for m in a["model_mounts"]}
        return [f"type=bind,src={store},dst={a['models_mount']},readonly" if f in own else f for f in flags]

    with throwaway(a, "engine", change) as attrs:
        yield model_exposure(a, attrs)


def key_file_world_readable(a: dict, _b: dict) -> Iterator[list[str]]:
    path = key_file(INVENTORY, a["name"])
    path.chmod(0o644)
    try:
        yield checks.private_file(path.stat().st_mode, str(path))
    finally:
        path.chmod(0o600)
    yield checks.private_file(path.stat().st_mode, str(path))


def key_in(flag: str) -> Callable:
    def plant(a: dict, _b: dict) -> Iterator[list[str]]:
        key = api_key(INVENTORY, a["name"])
        with throwaway(a, "gateway", lambda f: [*f, flag, f"PLANTED={key}"], label="tenant"):
            yield key_leaks_in_docker(docker_on(a), key)
        yield key_leaks_in_docker(docker_on(a), key)

    return plant


def key_on_command_line(a: dict, _b: dict) -> Iterator[list[str]]:
    """A process on the tenant's host with the key among its arguments."""
    key = api_key(INVENTORY, a["name"])
    host = infra_host(a["host"])
    pid = host.check_output("nohup python3 -c 'import time; time.sleep(60)' %s >/dev/null 2>&1 & echo $!", key).strip()
    try:
        yield checks.leaks(key, host.check_output("ps -eo args"), "the process list")
    finally:
        host.run("kill %s", pid)
    yield checks.leaks(key, host.check_output("ps -eo args"), "the process list")


def key_in_verbose_output(a: dict, _b: dict) -> Iterator[list[str]]:
    """A key passed in as an input (here: in the JSON output path) is echoed by -vvv."""
    key = api_key(INVENTORY, a["name"])
    target = Path("/tmp") / f"planted-{key}.json"
    try:
        yield checks.leaks(
            key, playbook_output("-vvv", "playbooks/tenants-list.yml", "-e", f"list_output={target}"), "-vvv output"
        )
    finally:
        target.unlink(missing_ok=True)


def file_of_another_uid(a: dict, b: dict) -> Iterator[list[str]]:
    """A file in A's volume that belongs to B's uid (what every file was when all
    engines ran as one uid); deleted after."""
    host = infra_host(a["host"])
    path = f"{data_dir(a)}/planted-neighbours-file"
    host.check_output("touch %s && chown %s %s", path, f"{b['uid']}:{b['uid']}", path)
    try:
        yield checks.tenant_ownership(a, ownership_view(a), {})
    finally:
        host.check_output("rm -f %s", path)
    yield checks.tenant_ownership(a, ownership_view(a), {})


def engine_runs_as_neighbours_uid(a: dict, b: dict) -> Iterator[list[str]]:
    """A copy of A's engine running as B's uid (one uid for every tenant)."""
    if a["host"] != b["host"]:
        raise NotApplicable("A and B are on different hosts")
    others = neighbour_users({a["name"]: a, b["name"]: b}, a)
    with throwaway(a, "engine", lambda f: [*without(f, "--user"), "--user", f"{b['uid']}:{b['uid']}"]) as attrs:
        yield checks.tenant_ownership(a, {**ownership_view(a), "engine_user": attrs["Config"]["User"]}, others)


def data_dir_world_readable(a: dict, _b: dict) -> Iterator[list[str]]:
    host = infra_host(a["host"])
    path = data_dir(a)
    want = f"{a['uid']}:{a['uid']}"

    def problems() -> list[str]:
        directory = host.file(path)
        return checks.private_dir(directory.mode, f"{directory.uid}:{directory.gid}", path, want)

    host.check_output("chmod 0755 %s", path)
    try:
        yield problems()
    finally:
        host.check_output("chmod 0700 %s", path)
    yield problems()


def encryption_claimed_but_absent(a: dict, _b: dict) -> Iterator[list[str]]:
    """The inventory says encrypted, the volume is not: the marking and LUKS checks object."""
    if setting(a["host"], "tenant_volume_encryption"):
        yield ["(skipped: encryption is on here; plant this break on an unencrypted inventory)"]
        return
    listing = playbook_output("playbooks/tenants-list.yml")
    yield checks.volume_marking(listing, a["name"], encrypted=True) + luks_problems(a)


BREAKS = [
    Break("engine-joins-other-network", "test_engine_cannot_reach_another_tenants_engine", engine_joins_other_network),
    Break(
        "engine-reaches-another-host", "test_engine_cannot_reach_another_tenants_engine", engine_reaches_another_host
    ),
    Break("host-on-internal-bridge", "test_local_user_cannot_reach_any_engine", host_on_internal_bridge),
    Break("prometheus-lifecycle-on", "test_local_user_cannot_stop_prometheus", prometheus_lifecycle_on),
    Break("engine-publishes-port", "test_engine_joins_only_its_internal_network", engine_publishes_port),
    Break("gateway-publishes-admin-port", "test_gateway_publishes_only_the_tenant_port", gateway_publishes_admin_port),
    Break(
        "metrics-port-on-every-address", "test_gateway_publishes_only_the_tenant_port", metrics_port_on_every_address
    ),
    Break("gateway-on-other-tenants-cores", "test_gateway_runs_on_its_tenants_cores", gateway_on_other_tenants_cores),
    Break("gateway-config-not-loaded", "test_gateway_runs_the_config_it_was_given", gateway_config_not_loaded),
    Break("every-refused-request-logged", "test_refused_requests_leave_a_bounded_log", every_refused_request_logged),
    Break("gateway-forwards-every-path", "test_gateway_exposes_only_v1_and_health", gateway_forwards_every_path),
    Break("gateway-forwards-lora-routes", "test_gateway_exposes_only_v1_and_health", gateway_forwards_lora_routes),
    Break("foreign-key-accepted", "test_foreign_key_gets_401", engine_accepts_foreign_key),
    Break(
        "retired-key-kept-until-a-run",
        "test_retired_key_is_refused_at_its_grace_time",
        retired_key_kept_until_a_run,
    ),
    Break("gateway-plaintext", "test_tenant_port_speaks_only_verified_tls", gateway_speaks_plain_http),
    Break("mounts-other-tenants-volume", "test_tenant_sees_only_its_own_volume", mounts_other_tenants_volume),
    Break("file-of-another-uid", "test_tenant_files_belong_to_its_own_uid", file_of_another_uid),
    Break("engine-runs-as-neighbours-uid", "test_tenant_files_belong_to_its_own_uid", engine_runs_as_neighbours_uid),
    Break(
        "runs-as-root",
        "test_container_is_hardened[non_root]",
        hardening_break("non_root", lambda f: [*without(f, "--user"), "--user", "0:0"]),
    ),
    Break(
        "writable-rootfs",
        "test_container_is_hardened[read_only_rootfs]",
        hardening_break("read_only_rootfs", lambda f: without(f, "--read-only")),
    ),
    Break(
        "keeps-capabilities",
        "test_container_is_hardened[cap_drop_all]",
        hardening_break("cap_drop_all", lambda f: without(f, "--cap-drop")),
    ),
    Break(
        "cap-add",
        "test_container_is_hardened[cap_drop_all]",
        hardening_break("cap_drop_all", lambda f: [*f, "--cap-add", "NET_ADMIN"]),
    ),
    Break(
        "may-gain-privileges",
        "test_container_is_hardened[no_new_privileges]",
        hardening_break("no_new_privileges", lambda f: without(f, "--security-opt")),
    ),
    Break(
        "docker-socket",
        "test_container_is_hardened[no_docker_socket]",
        hardening_break(
            "no_docker_socket", lambda f: [*f, "--mount", "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock"]
        ),
    ),
    Break(
        "no-memory-limit",
        "test_container_is_hardened[limits_set]",
        hardening_break("limits_set", lambda f: without(f, "--memory")),
    ),
    Break(
        "no-pids-limit",
        "test_container_is_hardened[limits_set]",
        hardening_break("limits_set", lambda f: [*without(f, "--pids-limit"), "--pids-limit", "-1"]),
    ),
    Break(
        "log-unbounded",
        "test_container_is_hardened[logs_bounded]",
        # Explicitly unbounded: a daemon.json default would fill in a missing max-size.
        hardening_break("logs_bounded", lambda f: [*without(f, "--log-opt"), "--log-opt", "max-size=-1"]),
    ),
    Break("host-path-mount", "test_container_mounts_only_its_own_paths", mounts_host_path),
    Break("models-writable", "test_container_mounts_only_its_own_paths", models_writable),
    Break("model-store-mounted", "test_engine_sees_only_its_own_model", model_store_mounted),
    Break("key-file-0644", "test_credential_file_is_private", key_file_world_readable),
    Break("key-in-label", "test_key_absent_from_docker_inspect_and_logs", key_in("--label")),
    Break("key-in-env", "test_key_absent_from_docker_inspect_and_logs", key_in("--env")),
    Break("key-on-command-line", "test_key_absent_from_process_list", key_on_command_line),
    Break("key-in-verbose-output", "test_key_absent_from_verbose_playbook_output", key_in_verbose_output),
    Break("data-dir-0755", "test_data_dir_is_private", data_dir_world_readable),
    Break(
        "encryption-claimed-but-absent",
        "test_volume_encryption_is_what_the_inventory_says",
        encryption_claimed_but_absent,
    ),
]


def run(brk: Break, a: dict, b: dict) -> tuple[bool | None, str]:
    """(passed, what happened): the check must report the break, then hold again once
    restored. None: the break cannot be planted on this inventory."""
    try:
        results = list(brk.plant(a, b))
    except NotApplicable as reason:
        return None, f"not applicable here: {reason}"
    caught, restored = results[0], results[1:]
    if not caught:
        return False, "NOT CAUGHT: the check reported nothing"
    if any(restored_problems for restored_problems in restored):
        return False, f"caught, but still failing after restore: {restored}"
    return True, f"caught: {caught[0]}"


def main() -> int:
    tenants = plan()
    if len(tenants) < 2:
        print("planting breaks needs two present tenants")
        return 1
    # Two tenants of one host: the network breaks join one tenant's engine to the other's
    # network, which exists only in that host's Docker.
    pairs = [(a, b) for a in tenants for b in tenants if a["name"] != b["name"] and a["host"] == b["host"]]
    if not pairs:
        print("planting breaks needs two present tenants on one host")
        return 1
    a, b = pairs[0]
    wanted = set(sys.argv[1:])
    failed = 0
    for brk in BREAKS:
        if wanted and brk.name not in wanted:
            continue
        passed, said = run(brk, a, b)
        failed += passed is False
        mark = "skip" if passed is None else "ok  " if passed else "FAIL"
        print(f"{mark} {brk.name:<32} {brk.proves}: {said}", flush=True)
    print(
        f"{failed} of {len(BREAKS)} breaks not caught or not restored" if failed else "every planted break was caught"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(HERE.parents[1])
    sys.exit(main())
