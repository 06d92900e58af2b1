"""A real govledger server for the client's tests, started from the built
binary (GOVLEDGER_BIN, default target/debug/govledger of this repository) on a
fresh SQLite ledger, with a token per role issued offline beforehand."""
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from govledger import Client  # noqa: E402


def binary() -> str:
    path = os.environ.get("GOVLEDGER_BIN") or str(ROOT / "target" / "debug" / "govledger")
    if not os.path.exists(path):
        pytest.exit(f"no govledger binary at {path}: run `cargo build` or set GOVLEDGER_BIN", returncode=2)
    return path


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


class Server:
    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.tokens: Dict[str, str] = {}
        for name, role in (
            ("admin", "admin"),
            ("dana", "data_scientist"),
            ("rita", "risk_officer"),
            ("ravi", "risk_officer"),
            ("ci-bot", "ci"),
            ("audra", "auditor"),
        ):
            self.tokens[name] = self.cli("token", "issue", "--sub", name, "--role", role, "--ttl", "1h").strip()
        self.process = subprocess.Popen(
            [binary(), "serve", "--bind", "127.0.0.1:0", "--data-dir", str(data_dir), "--checkpoint-interval", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=open(data_dir / "server.log", "wb"),
            cwd=str(ROOT),
            env=dict(os.environ, RUST_LOG="warn"),
        )
        line = self.process.stdout.readline().decode()
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"the server did not start: {line!r}; see {data_dir / 'server.log'}")
        self.url = line.split("listening on ", 1)[1].split(" ", 1)[0]

    def cli(self, *args: str) -> str:
        done = subprocess.run([binary(), *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True, cwd=str(ROOT))
        if done.returncode != 0:
            raise RuntimeError(f"govledger {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def client(self, who: str, **kwargs: object) -> Client:
        return Client(self.url, self.tokens[who], **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        stop(self.process)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("ledger"))
    yield running
    running.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real MLflow tracking server with a SQL (SQLite) backend store, the
    one kind of store that has webhooks."""

    def __init__(self, directory: Path) -> None:
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(
            os.environ,
            MLFLOW_DISABLE_TELEMETRY="true",
            MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https",
            MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
            MLFLOW_WEBHOOK_CACHE_TTL="1",
        )
        self.log = open(directory / "mlflow.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
             "--default-artifact-root", str(directory / "artifacts"), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                stop(self.process)
                raise RuntimeError(f"MLflow did not start; see {directory / 'mlflow.log'}")
            time.sleep(0.5)

    def stop(self) -> None:
        stop(self.process)


def require_mlflow() -> None:
    if os.environ.get("GOVLEDGER_SKIP_MLFLOW"):
        pytest.skip("MLflow tests run on the interpreter .ci/run installs MLflow for")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("MLflow is not installed: .ci/run installs it, and CI may not skip these tests")
        pytest.skip("MLflow is not installed (pip install mlflow); .ci/run installs it")


SECRET = "whsec-test-" + "7" * 24


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    require_mlflow()
    running = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def bridged(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> Iterator[Server]:
    """A govledger server with the MLflow bridge on, the shipped mapping."""
    directory = tmp_path_factory.mktemp("bridged")
    secret = directory / "mlflow-secret"
    secret.write_text(SECRET + "\n")
    running = Server(directory, "--mlflow-url", mlflow_server.url, "--mlflow-webhook-secret-file", str(secret))
    yield running
    running.stop()
