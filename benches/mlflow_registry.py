#!/usr/bin/env python3
"""Registering model versions: govledger against MLflow, and the import.

    cargo build --release
    python3 benches/mlflow_registry.py [--clients 16] [--rounds 3]

Starts a release govledger server (SQLite, durable) and a real MLflow
tracking server (SQLite backend, its default workers) on this machine. Each
round registers versions with `--clients` threads on each, one after the
other: govledger's `model.registered` through the Python client (one token
per client, as separate pipelines have), and MLflow's REST
`model-versions/create`; both name the run that trained the version, and
both are called from Python's urllib on the same box. Prints the
rate and the p50/p99 latency of each, per round, then times
`govledger mlflow import` of everything MLflow then holds into a fresh
ledger, three times, rate counted without MLflow's own answer time (the
import prints both).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))
sys.path.insert(0, str(ROOT / "clients" / "python" / "tests"))

from conftest import MlflowServer, Server  # noqa: E402


def run_threads(clients, per_client, work):
    latencies, errors = [], []
    lock = threading.Lock()

    def worker(index):
        mine = []
        for i in range(per_client):
            started = time.perf_counter()
            try:
                work(index, i)
            except Exception as e:  # a failed registration must not look fast
                with lock:
                    errors.append(repr(e))
                return
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    if errors:
        raise SystemExit(f"{len(errors)} registrations failed, first: {errors[0]}")
    latencies.sort()
    return {
        "ops": len(latencies),
        "rate": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--govledger-per-client", type=int, default=200)
    parser.add_argument("--mlflow-per-client", type=int, default=25)
    args = parser.parse_args()
    binary = os.environ.get("GOVLEDGER_BIN", str(ROOT / "target" / "release" / "govledger"))
    os.environ["GOVLEDGER_BIN"] = binary
    import mlflow
    from mlflow import MlflowClient

    work = Path(tempfile.mkdtemp(prefix="govbench-mlflow-"))
    mlflow_server = MlflowServer(work)
    gl_dir = work / "ledger"
    gl_dir.mkdir()
    server = Server(gl_dir)
    try:
        for c in range(args.clients):
            server.tokens[f"pipeline-{c}"] = server.cli("token", "issue", "--sub", f"pipeline-{c}", "--role", "ci", "--ttl", "1h").strip()
        gl = [server.client(f"pipeline-{c}") for c in range(args.clients)]
        mlflow.set_tracking_uri(mlflow_server.url)
        ml = MlflowClient(mlflow_server.url)
        tag = uuid.uuid4().hex[:6]
        names = [f"bench-{tag}-{c}" for c in range(args.clients)]
        runs = []
        for name in names:
            ml.create_registered_model(name)
            with mlflow.start_run() as run:
                mlflow.log_param("client", name)
                mlflow.log_metric("auc", 0.9)
            runs.append(run.info.run_id)
        results = []
        for r in range(args.rounds):
            def govledger_one(c, i, r=r):
                gl[c].append("model.registered", f"model:gl-{tag}-{c}@{r}.{i}", project="bench",
                             inputs=[f"run:train-{tag}-{c}"], attributes={"framework": "sklearn"})

            def mlflow_one(c, i):
                # The REST call itself, over the same urllib as govledger's client:
                # MlflowClient.create_model_version would add its own polling
                # until the version is READY.
                body = json.dumps({"name": names[c], "source": f"runs:/{runs[c]}/model", "run_id": runs[c]}).encode()
                request = urllib.request.Request(f"{mlflow_server.url}/api/2.0/mlflow/model-versions/create", data=body,
                                                 method="POST", headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as answer:
                    if answer.status != 200:
                        raise RuntimeError(f"MLflow answered {answer.status}")
                    answer.read()

            g = run_threads(args.clients, args.govledger_per_client, govledger_one)
            m = run_threads(args.clients, args.mlflow_per_client, mlflow_one)
            results.append({"round": r + 1, "govledger": g, "mlflow": m})
            print(f"round {r + 1}: govledger {g['rate']:.0f}/s p50 {g['p50_ms']:.1f} ms p99 {g['p99_ms']:.1f} ms | "
                  f"MLflow {m['rate']:.1f}/s p50 {m['p50_ms']:.1f} ms p99 {m['p99_ms']:.1f} ms | "
                  f"rate x{g['rate'] / m['rate']:.1f}, p99 /{m['p99_ms'] / g['p99_ms']:.1f}", flush=True)
        server.stop()

        imports = []
        for attempt in range(3):
            fresh = work / f"import-{attempt}"
            started = time.perf_counter()
            done = subprocess.run([binary, "mlflow", "import", "--tracking-uri", mlflow_server.url, "--data-dir", str(fresh),
                                   *sum((["--model", n] for n in names), [])],
                                  capture_output=True, text=True, env=dict(os.environ, RUST_LOG="warn"))
            total = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            line = done.stdout.strip().splitlines()[-1]
            match = re.search(r"imported (\d+) versions .*?: (\d+) events written \((\d+) versions/s recording, ([\d.]+) s waiting", line)
            versions, events, rate, waiting = int(match[1]), int(match[2]), int(match[3]), float(match[4])
            imports.append({"versions": versions, "events": events, "recording_rate": rate, "mlflow_seconds": waiting, "total_seconds": total})
            print(f"import {attempt + 1}: {versions} versions, {events} events, {rate} versions/s recording, "
                  f"{waiting:.1f} s waiting for MLflow, {total:.1f} s in all", flush=True)
        print(json.dumps({"clients": args.clients, "rounds": results, "imports": imports}))
    finally:
        server.stop()
        mlflow_server.stop()


if __name__ == "__main__":
    main()
