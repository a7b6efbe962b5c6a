"""A real Airflow stack as subprocesses, and a small client of its REST API.

:class:`AirflowStack` starts what a deployment runs (``api-server``, ``scheduler``,
``dag-processor``, ``triggerer`` and, with the CeleryExecutor, a ``celery worker``)
on one localhost port, each in its own process group with its output in a log file
under the Airflow home, waits until ``/api/v2/monitor/health`` reports every
component healthy, and stops every process (and every descendant) on exit.

Two shapes: ``LocalExecutor`` on a SQLite metadata database (nothing else needed),
or ``CeleryExecutor`` on a PostgreSQL metadata database and a Redis broker.

:class:`RestClient` drives the stack the way an operator's tools would: a JWT from
``POST /auth/token`` (SimpleAuthManager users ``admin`` and ``viewer``), then JSON
calls: unpause, trigger, wait for a run, read task instances and logs, list and
answer the human-in-the-loop forms (*Required actions*).

Standard library only; Airflow is never imported here (it runs in the subprocesses),
so the demo and the tests import this module anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USERS = {"admin": "admin", "viewer": "viewer"}  # SimpleAuthManager user -> role
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
TERMINAL_RUN_STATES = ("success", "failed")
FAILED_TI_STATES = ("failed", "upstream_failed")
LOG_TAIL_LINES = 40


class StackError(RuntimeError):
    """The stack could not start, or a component died (the message names it)."""


class ApiError(RuntimeError):
    """An HTTP error of the REST API: ``status`` and the body the server sent."""

    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f"{method} {url}: HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


class RunFailed(RuntimeError):
    """A DAG run ended in an unexpected state, or did not end in time."""

    def __init__(self, message: str, run: dict | None, task_states: dict[str, str]):
        super().__init__(message)
        self.run = run
        self.task_states = task_states


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def fernet_key() -> str:
    """A fresh Fernet key (what ``cryptography.fernet.Fernet.generate_key`` returns)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 (also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] == "Z":  # a zombie is dead, whatever its parent does
        return None
    return int(fields[1]), int(fields[19])


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start time (tells a reused pid apart)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _alive(pid: int, started: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == started


@dataclass
class Component:
    """One Airflow command of the stack, running in its own process group."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None
    known: dict[int, int] = field(default_factory=dict)  # pid -> start time, ever seen

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=dict(env),
                cwd=str(cwd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group (and session)
            )
        started = _proc_stat(self.proc.pid)
        if started is not None:
            self.known[self.proc.pid] = started[1]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def remember_descendants(self) -> None:
        if self.proc is not None:
            self.known.update(_descendants(self.proc.pid))

    def signal_all(self, sig: int) -> None:
        """Signal the process group, and every known process that left it (setsid)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
        for pid, started in list(self.known.items()):
            if _alive(pid, started):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)

    def survivors(self) -> list[int]:
        alive = [pid for pid, started in self.known.items() if _alive(pid, started)]
        if self.proc is not None:  # the group's members, zombies (dead, unreaped) aside
            alive += _group_members(self.proc.pid)
        return sorted(set(alive))

    def reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=0.1)


# --------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------


class AirflowStack:
    """Airflow's components as subprocesses on one localhost port; a context manager.

    ``home``: the Airflow home (created; logs, passwords file and config go there).
    ``repo``: the folder holding ``dags/`` and ``plugins/`` (and ``include/``, put on
    ``PYTHONPATH`` when present). ``executor``: ``"LocalExecutor"`` (metadata in
    ``home/airflow.db`` unless ``sql_alchemy_conn`` says otherwise) or
    ``"CeleryExecutor"`` (``sql_alchemy_conn`` a PostgreSQL URL and ``broker_url`` a
    Redis URL required; the Celery result backend defaults to the metadata database;
    tasks go to ``celery_queue``, unique by default, so stacks may share a broker).
    ``env``: extra environment (``AIRFLOW_CONN_*``, ``CPF_DEPOSIT_HOME``, ...), applied
    last. Inherited ``AIRFLOW__*``, ``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*`` variables
    are dropped, so the caller's own Airflow settings never leak in.

    Users ``admin`` (role admin) and ``viewer`` (role viewer), with the passwords given,
    else those of an earlier start on the same home, else generated
    (:attr:`passwords`), written 0600 to the passwords file in the home; the Fernet key
    and the JWT and API secrets are generated once per home too (``stack-secrets.json``,
    0600). ``started_in``: seconds from :meth:`start` to healthy.
    """

    def __init__(
        self,
        home: str | Path,
        repo: str | Path,
        *,
        executor: str = "LocalExecutor",
        port: int | None = None,
        sql_alchemy_conn: str | None = None,
        broker_url: str | None = None,
        result_backend: str | None = None,
        env: Mapping[str, str] | None = None,
        passwords: Mapping[str, str] | None = None,
        celery_concurrency: int = 2,
        celery_queue: str | None = None,
        api_workers: int = 1,
        start_timeout: float = 240,
        venv_bin: str | Path | None = None,
    ):
        if executor not in ("LocalExecutor", "CeleryExecutor"):
            raise ValueError(f"executor {executor!r}: LocalExecutor or CeleryExecutor")
        if executor == "CeleryExecutor" and not (sql_alchemy_conn and broker_url):
            raise ValueError(
                "the CeleryExecutor needs sql_alchemy_conn (PostgreSQL) and broker_url"
            )
        self.home = Path(home).resolve()
        self.repo = Path(repo).resolve()
        self.executor = executor
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.base_url = f"http://{self.host}:{self.port}"
        self.sql_alchemy_conn = sql_alchemy_conn or f"sqlite:///{self.home / 'airflow.db'}"
        self.broker_url = broker_url
        self.result_backend = result_backend
        if executor == "CeleryExecutor" and not result_backend:
            self.result_backend = "db+" + self.sql_alchemy_conn.replace("+psycopg2", "")
        self.extra_env = dict(env or {})
        self.home.mkdir(parents=True, exist_ok=True)
        self.passwords_file = self.home / "simple_auth_manager_passwords.json"
        kept = _read_json(self.passwords_file)  # a home used before keeps its passwords
        given = dict(passwords or {})
        self.passwords = {
            u: given.get(u) or kept.get(u) or secrets.token_urlsafe(12) for u in USERS
        }
        self.secrets = self._load_secrets()
        self.celery_concurrency = celery_concurrency
        # a queue of its own: two stacks sharing a broker never run each other's tasks
        self.celery_queue = celery_queue or f"cpf-stack-{secrets.token_hex(6)}"
        self.api_workers = api_workers
        self.start_timeout = start_timeout
        self.bin = Path(venv_bin) if venv_bin else Path(sys.executable).parent
        self.logs = self.home / "stack-logs"
        self.components: list[Component] = []
        self.env = self._environment()
        self.started_in: float | None = None  # seconds from start() to healthy

    # -- environment ---------------------------------------------------------------

    def _load_secrets(self) -> dict[str, str]:
        """Fernet key, JWT secret and API secret key: generated once per home and kept
        there (0600), so a stack restarted on the same metadata database can still
        decrypt its connections and accept its tokens."""
        path = self.home / "stack-secrets.json"
        kept = _read_json(path)
        wanted = {
            "fernet_key": fernet_key,
            "jwt_secret": lambda: secrets.token_urlsafe(48),
            "api_secret_key": lambda: secrets.token_urlsafe(32),
        }
        if all(kept.get(k) for k in wanted):
            return kept
        values = {k: kept.get(k) or make() for k, make in wanted.items()}
        _write_private(path, json.dumps(values) + "\n")
        return values

    def _environment(self) -> dict[str, str]:
        dropped = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(dropped) and k not in ("AIRFLOW_HOME", "AIRFLOW_CONFIG")
        }
        path = [str(self.bin), *env.get("PATH", "").split(os.pathsep)]
        pythonpath = [str(self.repo / "include")] if (self.repo / "include").is_dir() else []
        if env.get("PYTHONPATH"):
            pythonpath.append(env["PYTHONPATH"])
        env.update(
            {
                "PATH": os.pathsep.join(p for p in path if p),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.repo / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.repo / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__FERNET_KEY": self.secrets["fernet_key"],
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple."
                "simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{u}:{r}" for u, r in USERS.items()
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": str(self.api_workers),
                "AIRFLOW__API__SECRET_KEY": self.secrets["api_secret_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": self.secrets["jwt_secret"],
                # new DAG files are seen within seconds, not the default 5 minutes
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                # the log servers of workers and triggerer: free ports, not 8793/8794
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "GX_ANALYTICS_ENABLED": "false",
            }
        )
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        if self.executor == "CeleryExecutor":
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url or ""
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = self.result_backend or ""
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(self.celery_concurrency)
            env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] = self.celery_queue
        env.update(self.extra_env)
        return env

    def _write_passwords(self) -> None:
        """The SimpleAuthManager's passwords file (JSON user -> password), mode 0600."""
        _write_private(self.passwords_file, json.dumps(self.passwords) + "\n")

    # -- commands --------------------------------------------------------------------

    def airflow(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run ``airflow ARGS...`` with the stack's environment; output captured (text)."""
        done = subprocess.run(
            [str(self.bin / "airflow"), *args],
            env=self.env,
            cwd=str(self.home),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise StackError(
                f"airflow {' '.join(args)} exited {done.returncode}:\n"
                + "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
            )
        return done

    def _commands(self) -> list[tuple[str, list[str]]]:
        airflow = str(self.bin / "airflow")
        cmds = [
            (
                "api-server",
                [airflow, "api-server", "--host", self.host, "--port", str(self.port)],
            ),
            ("scheduler", [airflow, "scheduler"]),
            ("dag-processor", [airflow, "dag-processor"]),
            ("triggerer", [airflow, "triggerer"]),
        ]
        if self.executor == "CeleryExecutor":
            cmds.append(
                (
                    "celery-worker",
                    [
                        airflow,
                        "celery",
                        "worker",
                        "--concurrency",
                        str(self.celery_concurrency),
                        "--queues",
                        self.celery_queue,
                    ],
                )
            )
        return cmds

    # -- start, wait, stop -----------------------------------------------------------

    def start(self) -> AirflowStack:
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self._write_passwords()
        migrate = self.airflow("db", "migrate", timeout=600, check=False)
        (self.logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise StackError(
                f"airflow db migrate exited {migrate.returncode}:\n"
                + tail(self.logs / "db-migrate.log")
            )
        try:
            for name, argv in self._commands():
                comp = Component(name, argv, self.logs / f"{name}.log")
                comp.start(self.env, self.home)
                self.components.append(comp)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        return self

    def _check_alive(self) -> None:
        for comp in self.components:
            comp.remember_descendants()
            if not comp.running:
                code = comp.proc.returncode if comp.proc else None
                raise StackError(
                    f"{comp.name} exited ({code}) while the stack was starting; "
                    f"the end of {comp.log_path}:\n{tail(comp.log_path)}"
                )

    def health(self) -> dict:
        """``/api/v2/monitor/health`` (no login needed); {} while the server is not up."""
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return {}

    def _celery_ready(self) -> bool:
        comp = next((c for c in self.components if c.name == "celery-worker"), None)
        if comp is None:
            return True
        try:
            text = comp.log_path.read_text(errors="replace")
        except OSError:
            return False
        return " ready." in text

    def wait_healthy(self, timeout: float | None = None) -> dict:
        """Wait until every component reports healthy (and the Celery worker is ready)."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        health: dict = {}
        while time.monotonic() < deadline:
            self._check_alive()
            health = self.health()
            bad = [c for c in HEALTH_COMPONENTS if (health.get(c) or {}).get("status") != "healthy"]
            if health and not bad and self._celery_ready():
                return health
            time.sleep(1)
        bad = [c for c in HEALTH_COMPONENTS if (health.get(c) or {}).get("status") != "healthy"]
        if not health:
            bad = ["api-server"]
        elif not self._celery_ready():
            bad.append("celery-worker")
        names = {"dag_processor": "dag-processor", "metadatabase": "api-server"}
        parts = [f"the stack was not healthy after {timeout or self.start_timeout:.0f} s: "]
        parts.append(f"not healthy: {', '.join(bad)}; health: {json.dumps(health)}")
        for name in bad:
            comp = next((c for c in self.components if c.name == names.get(name, name)), None)
            if comp is not None:
                parts.append(f"\n--- the end of {comp.log_path}:\n{tail(comp.log_path)}")
        raise StackError("".join(parts))

    def stop(self, grace: float = 20) -> None:
        """SIGTERM every component, SIGKILL what is left after ``grace`` seconds, and
        check that no process of the stack survives (raises StackError if one does)."""
        for comp in self.components:
            comp.remember_descendants()
        for comp in self.components:
            comp.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for comp in self.components:
                comp.reap()
                comp.remember_descendants()
            if not any(comp.survivors() for comp in self.components):
                break
            time.sleep(0.3)
        for comp in self.components:
            if comp.survivors():
                comp.signal_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for comp in self.components:
                comp.reap()
            if not any(comp.survivors() for comp in self.components):
                break
            time.sleep(0.3)
        left = {c.name: c.survivors() for c in self.components}
        left = {k: v for k, v in left.items() if v}
        self.components = []
        if left:
            raise StackError(f"processes of the stack survived SIGKILL: {left}")

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------

    def client(self, user: str = "admin") -> RestClient:
        return RestClient(self.base_url, user, self.passwords[user])

    def log_tails(self) -> str:
        """The end of every component's log (for a failure message)."""
        return "\n".join(f"--- {p.name}:\n{tail(p, 15)}" for p in sorted(self.logs.glob("*.log")))


# --------------------------------------------------------------------------------------
# The REST API
# --------------------------------------------------------------------------------------


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe="")


class RestClient:
    """JSON calls to Airflow's public REST API (``/api/v2``) with a JWT bearer."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 60):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self._token: str | None = None

    # -- plumbing --------------------------------------------------------------------

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.login()
        return self._token

    def login(self) -> str:
        """A fresh JWT from ``POST /auth/token``."""
        body = json.dumps({"username": self.username, "password": self._password}).encode()
        req = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        status, text, _ = self._send(req)
        if status >= 400:
            raise ApiError("POST", req.full_url, status, text)
        return json.loads(text)["access_token"]

    def _send(self, req: urllib.request.Request) -> tuple[int, str, dict]:
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace"), dict(exc.headers)

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, str, dict]:
        """One request; (status, body text, headers), no exception on HTTP errors."""
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Accept": "application/json"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in (1, 2):
            if auth:
                hdrs["Authorization"] = f"Bearer {self.token}"
            req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
            status, text, resp_headers = self._send(req)
            if status == 401 and auth and attempt == 1:
                self._token = None  # expired: log in again once
                continue
            return status, text, resp_headers
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body: Any = None, params=None) -> Any:
        status, text, _ = self.raw(method, path, body, params)
        if status >= 400:
            raise ApiError(method, self.base_url + path, status, text)
        return json.loads(text) if text.strip() else None

    def get(self, path: str, params=None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body if body is not None else {})

    def patch(self, path: str, body: Any, params=None) -> Any:
        return self.request("PATCH", path, body, params)

    # -- DAGs and runs ---------------------------------------------------------------

    def unpause(self, dag_id: str) -> dict:
        return self.patch(f"/api/v2/dags/{_q(dag_id)}", {"is_paused": False})

    def import_errors(self) -> list[dict]:
        return self.get("/api/v2/importErrors", {"limit": 100})["import_errors"]

    def wait_dag_parsed(self, dag_id: str, timeout: float = 180) -> dict:
        """The DAG once the dag-processor has serialized it; an import error of its
        file, or the timeout, raises with the error the processor recorded."""
        deadline = time.monotonic() + timeout
        while True:
            status, text, _ = self.raw("GET", f"/api/v2/dags/{_q(dag_id)}/details")
            if status == 200:
                return json.loads(text)
            if status != 404:
                raise ApiError("GET", f"/api/v2/dags/{dag_id}/details", status, text)
            errors = self.import_errors()
            if errors or time.monotonic() > deadline:
                detail = "; ".join(f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
                why = "import errors" if errors else f"not parsed after {timeout:.0f} s"
                raise RuntimeError(f"DAG {dag_id}: {why}. {detail}".rstrip(". "))
            time.sleep(2)

    def reparse(self, dag_id: str, timeout: float = 120) -> dict:
        """Have the dag-processor parse the DAG's file now; the DAG once it has."""
        before = self.get(f"/api/v2/dags/{_q(dag_id)}/details")
        self.request("PUT", f"/api/v2/parseDagFile/{_q(before['file_token'])}")
        deadline = time.monotonic() + timeout
        while True:
            dag = self.get(f"/api/v2/dags/{_q(dag_id)}/details")
            if dag["last_parsed_time"] != before["last_parsed_time"]:
                return dag
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAG {dag_id} not parsed again within {timeout:.0f} s")
            time.sleep(1)

    def trigger(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """Trigger a run (``logical_date`` ISO 8601 or None); its run id."""
        run = self.post(
            f"/api/v2/dags/{_q(dag_id)}/dagRuns",
            {"logical_date": logical_date, "conf": dict(conf or {})},
        )
        return run["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict]:
        out = self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns", {"limit": 100, **params})
        return out["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return self.get(path, {"limit": 1000})["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """``task_id`` (``task_id[map_index]`` when mapped) -> state."""
        out = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            out[key] = ti["state"]
        return out

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        states: Iterable[str] = ("success",),
        timeout: float = 600,
        poll: float = 2,
    ) -> dict:
        """The run once its state is one of ``states``; raises :class:`RunFailed` with
        the task states and the failed task ids when it ends otherwise or in time."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in wanted:
                return run
            if run["state"] in TERMINAL_RUN_STATES or time.monotonic() > deadline:
                tis = self.task_states(dag_id, run_id)
                failed = sorted(k for k, v in tis.items() if v in FAILED_TI_STATES)
                why = (
                    f"ended {run['state']}"
                    if run["state"] in TERMINAL_RUN_STATES
                    else f"still {run['state']} after {timeout:.0f} s"
                )
                raise RunFailed(
                    f"run {dag_id} {run_id} {why} (expected {sorted(wanted)}); failed tasks: "
                    f"{failed}; task states: {tis}",
                    run,
                    tis,
                )
            time.sleep(poll)

    # -- human in the loop -----------------------------------------------------------

    def pending_actions(self, dag_id: str | None = None, run_id: str | None = None) -> list[dict]:
        """HITL details still awaiting a response (*Required actions*), of every DAG
        unless ``dag_id``."""
        path = f"/api/v2/dags/{_q(dag_id or '~')}/dagRuns/{_q(run_id or '~')}/hitlDetails"
        out = self.get(path, {"response_received": "false", "limit": 100})
        return list(out["hitl_details"])

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict:
        return self.get(
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
            f"{_q(task_id)}/{map_index}/hitlDetails"
        )

    def wait_action(
        self, dag_id: str, run_id: str, task_id: str, timeout: float = 600, poll: float = 2
    ) -> dict:
        """The pending HITL detail of ``task_id`` once the task awaits input; raises
        :class:`RunFailed` if the run ends first or the timeout passes."""
        deadline = time.monotonic() + timeout
        while True:
            for detail in self.pending_actions(dag_id, run_id):
                if detail["task_instance"]["task_id"] == task_id:
                    return detail
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_RUN_STATES or time.monotonic() > deadline:
                tis = self.task_states(dag_id, run_id)
                failed = sorted(k for k, v in tis.items() if v in FAILED_TI_STATES)
                raise RunFailed(
                    f"run {dag_id} {run_id} is {run['state']} and {task_id} never awaited "
                    f"input; failed tasks: {failed}; task states: {tis}",
                    run,
                    tis,
                )
            time.sleep(poll)

    def answer_action(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int,
        chosen_options: list[str],
        params_input: Mapping[str, Any] | None = None,
    ) -> dict:
        """Respond to a HITL form, as the *Required actions* page does."""
        return self.patch(
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
            f"{_q(task_id)}/{map_index}/hitlDetails",
            {"chosen_options": list(chosen_options), "params_input": dict(params_input or {})},
        )

    # -- logs ------------------------------------------------------------------------

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The whole log of one try, one line per record (event then its fields)."""
        out = self.get(
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/logs/{int(try_number)}",
            {"full_content": "true", "map_index": map_index},
        )
        lines = []
        for entry in out.get("content") or []:
            if isinstance(entry, dict):
                fields = " ".join(
                    f"{k}={v}" for k, v in entry.items() if k not in ("event", "timestamp", "level")
                )
                lines.append(
                    f"{entry.get('timestamp', '')} {entry.get('level', '')} "
                    f"{entry.get('event', '')} {fields}".rstrip()
                )
            else:
                lines.append(str(entry))
        return "\n".join(lines)
