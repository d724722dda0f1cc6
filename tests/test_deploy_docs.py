"""The deployment guide's files (docs/deploy/) against devserve's real options and behaviour.

Every manifest is parsed; the command lines in the Deployment, the systemd unit and the
Dockerfile are resolved by devserve itself (`devserve ARGS --print-config`), and the ports,
paths and timings the files give Kubernetes, systemd, Docker and nginx are checked against what
devserve will really listen on and how long it will really drain. Then devserve is started with
the Deployment's arguments and the systemd unit's, and answers its probes. The guide must show
each file as it is.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fake_systemd import LAUNCHER, next_states, notify_socket
from tests.utils import Process, clean_env, devserve_command, spawned

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
APPS = str(Path(__file__).parent / "cli_apps")
APP = "supervised_app:app"
HEALTH = re.compile(r"health endpoints on (http://[^\s/\"]+)/livez")
SERVING = re.compile(r"serving on (http://[^\s\"]+)")


# --------------------------------------------------------------------------- reading the files
def manifest(name: str) -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d is not None]
    assert len(documents) == 1, name
    document: dict[str, Any] = documents[0]
    return document


def container() -> dict[str, Any]:
    containers = manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


def deployment_argv() -> list[str]:
    """The container's command line after `devserve`."""
    spec = container()
    argv = [str(arg) for arg in [*spec.get("command", []), *spec.get("args", [])]]
    assert argv[0] == "devserve", argv
    return argv[1:]


def unit(path: Path) -> dict[str, dict[str, str]]:
    """A systemd unit file as {section: {key: value}} (each key here is given once)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert key not in current, f"{key} given twice in {path.name}"
        current[key] = value
    return sections


def unit_argv() -> list[str]:
    argv = shlex.split(unit(DEPLOY / "systemd" / "devserve.service")["Service"]["ExecStart"])
    assert Path(argv[0]).name == "devserve", argv
    return argv[1:]


def dockerfile() -> dict[str, list[str]]:
    """The Dockerfile's instructions, continuation lines joined: {INSTRUCTION: [arguments]}."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    instructions: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.setdefault(word.upper(), []).append(rest.strip())
    return instructions


def docker_argv() -> list[str]:
    (cmd,) = dockerfile()["CMD"]
    argv = json.loads(cmd)  # the exec form: no shell between docker and devserve's signals
    assert isinstance(argv, list) and argv[0] == "devserve", cmd
    return [str(arg) for arg in argv[1:]]


def nginx() -> str:
    return "\n".join(
        line.split("#", 1)[0] for line in (DEPLOY / "nginx.conf").read_text().splitlines()
    )


def nginx_directives(name: str) -> list[str]:
    return [m.strip() for m in re.findall(rf"(?m)^[ \t]*{name}[ \t]+([^;{{]*);", nginx())]


# --------------------------------------------------------------------------- devserve's view
def resolve(argv: list[str], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """What devserve makes of `argv`: every option's resolved value (`--print-config`), in a
    directory without a config file and an environment without DEVSERVE_* variables."""
    env = {k: v for k, v in clean_env().items() if k != "WEB_CONCURRENCY"}
    env.update(environ or {})
    result = subprocess.run(
        devserve_command(*argv, "--print-config"),
        capture_output=True,
        text=True,
        env=env,
        cwd=DEPLOY,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        name, value, _source = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        values[name] = ast.literal_eval(value)
    return values


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def app_ports(config: dict[str, Any]) -> set[int]:
    if config["bind"]:
        return {port_of(a) for a in config["bind"] if not a.startswith(("unix:", "fd://"))}
    return {config["port"]}


def named_ports() -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container()["ports"]}


def container_port(port: int | str) -> int:
    return named_ports()[port] if isinstance(port, str) else port


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    return resolve(deployment_argv())


# --------------------------------------------------------------------------- Kubernetes
@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "hpa.yaml"])
def test_every_manifest_is_one_kubernetes_object(name: str) -> None:
    """Each manifest parses as YAML into one object with apiVersion, kind and a name."""
    document = manifest(name)
    assert document["apiVersion"] and document["kind"] and document["metadata"]["name"]


def test_deployment_arguments_are_devserve_options(deployed: dict[str, Any]) -> None:
    """devserve accepts the container's arguments: production mode, the admin endpoint on."""
    assert deployed["prod"] is True
    assert deployed["admin"] is not None
    assert deployed["app"] == "app:app"


def test_probes_ask_the_admin_endpoint(deployed: dict[str, Any]) -> None:
    """Readiness asks /readyz and liveness /livez, both on the port --admin listens on."""
    spec = container()
    admin = port_of(deployed["admin"])
    readiness, liveness = spec["readinessProbe"]["httpGet"], spec["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz" and liveness["path"] == "/livez"
    assert container_port(readiness["port"]) == admin
    assert container_port(liveness["port"]) == admin


def test_container_ports_are_the_ports_devserve_listens_on(deployed: dict[str, Any]) -> None:
    """The declared ports are the app's (--bind) and the admin endpoint's, and nothing else."""
    ports = named_ports()
    assert {ports["http"]} == app_ports(deployed)
    assert ports["admin"] == port_of(deployed["admin"])
    assert set(ports.values()) == app_ports(deployed) | {port_of(deployed["admin"])}


def test_prometheus_annotations_point_at_admin_metrics(deployed: dict[str, Any]) -> None:
    """The pod asks to be scraped at /metrics on the admin port."""
    annotations = manifest("deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == port_of(deployed["admin"])


def prestop_seconds() -> float:
    pre_stop = container()["lifecycle"]["preStop"]
    if "sleep" in pre_stop:  # the kubelet's own sleep action (Kubernetes 1.30+)
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


def test_grace_period_covers_prestop_and_the_drain(deployed: dict[str, Any]) -> None:
    """terminationGracePeriodSeconds outlasts the preStop sleep plus devserve's drain."""
    pod = manifest("deployment.yaml")["spec"]["template"]["spec"]
    drain = deployed["timeout_graceful_shutdown"]
    assert prestop_seconds() >= 3, "endpoints need a few seconds to drop the pod"
    assert drain >= 1
    assert pod["terminationGracePeriodSeconds"] > prestop_seconds() + drain


def test_workers_follow_the_pods_cpu_limit() -> None:
    """WEB_CONCURRENCY comes from the CPU limit, and devserve takes it as --workers."""
    spec = container()
    (variable,) = [v for v in spec["env"] if v["name"] == "WEB_CONCURRENCY"]
    field = variable["valueFrom"]["resourceFieldRef"]
    assert (field["containerName"], field["resource"]) == (spec["name"], "limits.cpu")
    cores = int(spec["resources"]["limits"]["cpu"])  # what the downward API hands over
    assert resolve(deployment_argv(), {"WEB_CONCURRENCY": str(cores)})["workers"] == cores


def test_service_sends_traffic_to_the_app_port(deployed: dict[str, Any]) -> None:
    """The Service selects the Deployment's pods and targets the app's port, not the admin's."""
    service, deployment = manifest("service.yaml"), manifest("deployment.yaml")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    targets = {container_port(port["targetPort"]) for port in service["spec"]["ports"]}
    assert targets == app_ports(deployed)


def test_hpa_scales_the_deployment() -> None:
    """The HorizontalPodAutoscaler names the Deployment and scales it from at least 2 pods."""
    hpa, deployment = manifest("hpa.yaml"), manifest("deployment.yaml")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == (deployment["apiVersion"], "Deployment")
    assert target["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert container()["resources"]["requests"]["cpu"], "CPU utilization needs a request"


# --------------------------------------------------------------------------- systemd
def test_service_is_type_notify_with_watchdog_and_a_long_enough_stop() -> None:
    """Type=notify, the supervisor may notify, a watchdog, and a stop timeout past the drain."""
    service = unit(DEPLOY / "systemd" / "devserve.service")
    section = service["Service"]
    assert section["Type"] == "notify" and section["NotifyAccess"] == "main"
    assert int(section["WatchdogSec"]) > 0
    assert section["KillMode"] == "mixed"
    assert section["ExecReload"] == "/bin/kill -HUP $MAINPID"
    drain = resolve(unit_argv())["timeout_graceful_shutdown"]
    assert int(section["TimeoutStopSec"]) > drain
    assert "devserve.socket" in service["Unit"]["Requires"].split()


def test_unit_execstart_leaves_listening_to_the_socket() -> None:
    """ExecStart's flags are devserve's and bind nothing: the socket unit's socket is used."""
    argv = unit_argv()
    config = resolve(argv)
    assert config["prod"] is True and config["admin"] is not None
    assert not {"--bind", "--host", "--port", "--uds", "--fd"} & set(argv)


def test_socket_listens_where_nginx_connects() -> None:
    """The socket unit's ListenStream is the address nginx's upstream names."""
    listen = unit(DEPLOY / "systemd" / "devserve.socket")["Socket"]["ListenStream"]
    assert nginx_directives("server") == [listen]


# --------------------------------------------------------------------------- Docker
def test_dockerfile_cmd_is_devserve_and_exposes_its_ports(deployed: dict[str, Any]) -> None:
    """The CMD resolves like the Deployment's arguments; EXPOSE lists the app and admin ports."""
    instructions = dockerfile()
    config = resolve(docker_argv())
    assert config["prod"] is True
    exposed = {int(port.split("/")[0]) for line in instructions["EXPOSE"] for port in line.split()}
    assert exposed == app_ports(config) | {port_of(config["admin"])}
    assert app_ports(config) == app_ports(deployed)
    assert port_of(config["admin"]) == port_of(deployed["admin"])


def test_dockerfile_runs_as_a_user_and_checks_livez() -> None:
    """A python:3.11-slim image, a non-root USER, and a HEALTHCHECK of /livez on --admin."""
    instructions = dockerfile()
    assert instructions["FROM"] == ["python:3.11-slim"]
    assert instructions["USER"][-1] not in ("root", "0")
    (healthcheck,) = instructions["HEALTHCHECK"]
    admin = port_of(resolve(docker_argv())["admin"])
    assert f"127.0.0.1:{admin}/livez" in healthcheck


# --------------------------------------------------------------------------- nginx
def test_nginx_proxies_to_the_app_port(deployed: dict[str, Any]) -> None:
    """proxy_pass goes to an upstream whose server is the app's port, as everywhere else."""
    (target,) = nginx_directives("proxy_pass")
    upstream = re.search(rf"upstream\s+{target.removeprefix('http://')}\s*{{([^}}]*)}}", nginx())
    assert upstream is not None, target
    (server,) = re.findall(r"server\s+([^;\s]+)", upstream.group(1))
    assert {port_of(server)} == app_ports(deployed) == app_ports(resolve(docker_argv()))


def test_nginx_passes_websocket_upgrades_and_forwarded_headers() -> None:
    """Upgrade and Connection go through (HTTP/1.1), and so do the X-Forwarded-* devserve reads."""
    headers = dict(h.split(None, 1) for h in nginx_directives("proxy_set_header"))
    assert nginx_directives("proxy_http_version") == ["1.1"]
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", nginx())
    assert {"X-Forwarded-For", "X-Forwarded-Proto", "Host"} <= headers.keys()


def test_nginx_timeouts_fit_devserves(deployed: dict[str, Any]) -> None:
    """nginx drops idle upstream connections before devserve would, and waits on a quiet
    WebSocket longer than devserve's ping interval."""
    (keepalive,) = nginx_directives("keepalive_timeout")
    (read,) = nginx_directives("proxy_read_timeout")
    assert float(keepalive.rstrip("s")) < deployed["timeout_keep_alive"]
    assert float(read.rstrip("s")) > deployed["ws_ping_interval"]


# --------------------------------------------------------------------------- the guide
@pytest.mark.parametrize(
    "name",
    [
        "kubernetes/deployment.yaml",
        "kubernetes/service.yaml",
        "kubernetes/hpa.yaml",
        "systemd/devserve.socket",
        "systemd/devserve.service",
        "Dockerfile",
        "nginx.conf",
    ],
)
def test_guide_shows_and_links_each_file_as_it_is(name: str) -> None:
    """docs/deploy/index.md links each file and shows its whole text in a code block."""
    guide = (DEPLOY / "index.md").read_text()
    assert f"]({name})" in guide
    blocks = re.findall(r"(?ms)^```[a-z]*\n(.*?)^```$", guide)
    assert (DEPLOY / name).read_text() in blocks


def devserve_flags() -> set[str]:
    """Every flag `devserve` and `devserve ctl` accept."""
    from devserver.cli import main
    from devserver.ctl import ctl

    commands = [main, ctl, *ctl.commands.values()]
    return {flag for c in commands for p in c.params for flag in [*p.opts, *p.secondary_opts]}


def test_migration_tables_name_only_real_devserve_flags() -> None:
    """In docs/migrating.md, every flag in a table's devserve column is one devserve has, and
    so is every flag of the other server's that the table calls "the same"."""
    guide = (DEPLOY.parent / "migrating.md").read_text()
    rows = [line.split(" | ") for line in guide.splitlines() if line.startswith("| ")]
    cells = [row[-1] for row in rows] + [row[0] for row in rows if row[-1].startswith("the same")]
    named = {flag for cell in cells for flag in re.findall(r"`(--[a-z][a-z0-9-]*)", cell)}
    assert named, "no devserve flags found in the tables"
    assert named <= devserve_flags(), sorted(named - devserve_flags())


# --------------------------------------------------------------------------- really running
def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """`argv` with `flag`'s value replaced (or the flag added)."""
    if flag in argv:
        index = argv.index(flag)
        return [*argv[: index + 1], value, *argv[index + 2 :]]
    return [*argv, flag, value]


def runnable(argv: list[str], tmp_path: Path) -> list[str]:
    """`argv` on free loopback ports, with a test app and a control socket of the test's own."""
    argv = [APP if arg == "app:app" else arg for arg in argv]
    if "--bind" in argv:
        argv = with_option(argv, "--bind", "127.0.0.1:0")
    argv = with_option(argv, "--admin", "127.0.0.1:0")
    argv = with_option(argv, "--control", str(tmp_path / "ctl.sock"))
    return [*with_option(argv, "--app-dir", APPS), "--no-tui"]


@contextlib.contextmanager
def probed(proc: Process) -> Iterator[str]:
    """The admin URL once devserve serves."""
    match = HEALTH.search(proc.out.wait_for(HEALTH.pattern, timeout=20))
    assert match is not None, proc.out.text
    line = proc.out.wait_for(r"serving on |error:", timeout=20)
    assert "serving on" in line, proc.out.text
    yield match.group(1)


def test_deployment_arguments_answer_the_probes(tmp_path: Path) -> None:
    """devserve started with the Deployment's arguments (on free ports) answers /livez,
    /readyz and /metrics, serves the app, and drains to exit 0 on SIGTERM."""
    argv = runnable(deployment_argv(), tmp_path)
    env = {"WEB_CONCURRENCY": "2", "NOTIFY_SOCKET": "", "LISTEN_FDS": "0"}
    with spawned(devserve_command(*argv), env) as proc, probed(proc) as admin:
        serving = SERVING.search(proc.out.wait_for("serving on"))
        assert serving is not None
        livez = httpx.get(f"{admin}/livez", timeout=5)
        readyz = httpx.get(f"{admin}/readyz", timeout=5)
        metrics = httpx.get(f"{admin}/metrics", timeout=5)
        page = httpx.get(f"{serving.group(1)}/pid", timeout=5)
        proc.out.stop(signal.SIGTERM, timeout=20)
    assert livez.status_code == 200
    assert (readyz.status_code, readyz.json()) == (
        200,
        {"ready": True, "workers_ready": 2, "crash_loop": False},
    )
    assert metrics.status_code == 200 and "devserve_ready 1.0" in metrics.text
    assert page.status_code == 200 and page.text.isdigit()


def test_unit_execstart_runs_socket_activated_and_notifies(tmp_path: Path) -> None:
    """devserve started as the unit says, with systemd's part played by the test: it serves on
    the passed socket, says READY=1, pings the watchdog and answers /readyz."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    command = [sys.executable, "-c", LAUNCHER, str(fd), *runnable(unit_argv(), tmp_path)]
    with notify_socket(tmp_path) as (sock, path), listener:
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "DEVSERVE_WORKERS": "1"}
        with spawned(command, env, pass_fds=(fd,)) as proc, probed(proc) as admin:
            listener.close()  # from now on only devserve holds the socket, as under systemd
            ready = next_states(sock)
            ping = next_states(sock, timeout=2, watchdog=True)
            page = httpx.get(f"http://127.0.0.1:{port}/pid", timeout=5)
            readyz = httpx.get(f"{admin}/readyz", timeout=5)
            proc.out.stop(signal.SIGTERM, timeout=20)
    assert "READY=1" in ready and ping == ["WATCHDOG=1"]
    assert page.status_code == 200 and readyz.status_code == 200
