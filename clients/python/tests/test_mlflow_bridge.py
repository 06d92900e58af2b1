"""The MLflow bridge against a real MLflow tracking server: registry webhooks
in, events out; aliases gated as deployments; forged deliveries refused; and
`govledger mlflow import` writing a registry once."""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import SECRET, binary, require_mlflow

EVENTS = [
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_alias.created",
    "model_version_alias.deleted",
]


@pytest.fixture()
def registry(mlflow_server, bridged):
    require_mlflow()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    hook = client.create_webhook(
        name=f"govledger-{uuid.uuid4().hex[:6]}",
        url=f"{bridged.url}/api/v1/integrations/mlflow",
        events=EVENTS,
        secret=SECRET,
    )
    yield client
    # Later tests create a thousand versions; they are not this server's to mirror.
    client.delete_webhook(hook.webhook_id)


def wait_for(what, check, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def entity_or_none(gl, ref):
    from govledger import GovledgerError

    try:
        return gl.entity(ref)
    except GovledgerError as e:
        if e.code == "not_found":
            return None
        raise


def train_run(name: str):
    """An MLflow run that read a training and an evaluation dataset."""
    import mlflow
    import numpy as np

    with mlflow.start_run() as run:
        train = mlflow.data.from_numpy(np.arange(12).reshape(6, 2), name=f"{name}-train", source="file:///lake/train.csv")
        holdout = mlflow.data.from_numpy(np.arange(8).reshape(4, 2), name=f"{name}-holdout", source="file:///lake/holdout.csv")
        mlflow.log_input(train, context="training")
        mlflow.log_input(holdout, context="eval")
        mlflow.log_param("C", "1.0")
        mlflow.log_metric("accuracy", 0.94)
    return run.info.run_id, train.digest


def test_a_registered_version_appears_with_its_run_and_data(registry, bridged):
    gl = bridged.client("audra")
    name = f"iris-{uuid.uuid4().hex[:6]}"
    run_id, digest = train_run(name)
    registry.create_registered_model(name)
    created = registry.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id, tags={"team": "risk"})
    started = time.monotonic()
    model = f"model:{name}@{created.version}"
    entity = wait_for(model, lambda: entity_or_none(gl, model), interval=0.02)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"the version took {elapsed:.2f} s to appear"
    registered = [e for e in entity["history"] if e["kind"] == "model.registered"][0]
    assert registered["actor"] == "mlflow" and registered["project"] == "fraud"
    assert registered["attributes"]["tags"]["team"] == "risk"
    assert registered["attributes"]["tags"]["govledger.mlflow.run_id"] == run_id
    assert registered["attributes"]["metrics"]["accuracy"] == 0.94
    upstream = {n["ref"] for n in gl.lineage(model, direction="upstream") if n.get("type") != "edge"}
    assert f"run:mlflow-{run_id}" in upstream
    assert f"dataset:mlflow/{name}-train@{digest}" in upstream
    # Evaluation data is not training data.
    assert not any("holdout" in ref for ref in upstream), upstream
    run = gl.entity(f"run:mlflow-{run_id}")
    started_event = [e for e in run["history"] if e["kind"] == "run.started"][0]
    assert started_event["attributes"]["parameters"] == {"C": "1.0"}

    registry.set_model_version_tag(name, created.version, "stage", "validated")
    wait_for("the tag", lambda: any(e["kind"] == "mlflow.tag_set" for e in gl.entity(model)["history"]))


def test_aliases_are_gated_deployments_and_enforced(registry, bridged):
    dana, rita, ravi, gl = (bridged.client(n) for n in ("dana", "rita", "ravi", "audra"))
    name = f"scorer-{uuid.uuid4().hex[:6]}"
    run_id, _ = train_run(name)
    registry.create_registered_model(name)
    version = registry.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    model = f"model:{name}@{version}"
    wait_for(model, lambda: entity_or_none(gl, model))
    deployment = f"deployment:production/{name}"

    # Unapproved: blocked on the record, and the alias taken away in MLflow.
    registry.set_registered_model_alias(name, "champion", version)
    blocked = wait_for("deployment.blocked", lambda: [e for e in gl.events(subject=deployment) if e["kind"] == "deployment.blocked"])
    assert any("approval" in r for r in blocked[0]["attributes"]["reasons"]), blocked[0]["attributes"]
    wait_for("the alias deleted in MLflow", lambda: "champion" not in _aliases(registry, name))
    reverted = wait_for("mlflow.alias_reverted", lambda: [e for e in gl.events(subject=deployment) if e["kind"] == "mlflow.alias_reverted"])
    assert reverted[0]["attributes"]["action"] == "deleted"
    assert not gl.gate(model, "production").allowed

    # Evaluated on held-out data, requested and granted by two risk officers.
    holdout = f"dataset:{name}-holdout@1"
    dana.append("dataset.version_created", holdout, project="fraud")
    dana.append("model.evaluated", model, project="fraud", inputs=[holdout],
                attributes={"metrics": {"accuracy": 0.93}, "thresholds": {"accuracy": 0.9}, "passed": True})
    approval = dana.request_approval(model, "production")
    rita.decide(approval["id"], "grant", "validation reviewed")
    ravi.decide(approval["id"], "grant", "second review")
    assert gl.gate(model, "production").allowed

    registry.set_registered_model_alias(name, "champion", version)
    live = wait_for("deployment.succeeded", lambda: [e for e in gl.events(subject=deployment) if e["kind"] == "deployment.succeeded"])
    assert live[0]["attributes"]["model"] == model
    assert gl.entity(deployment)["status"] == "live"
    time.sleep(1.0)
    assert _aliases(registry, name).get("champion") == version, "an allowed alias stays"

    # A second version, not approved, moved onto champion: moved back to the first.
    version2 = registry.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    wait_for("version 2", lambda: entity_or_none(gl, f"model:{name}@{version2}"))
    registry.set_registered_model_alias(name, "champion", version2)
    wait_for("champion moved back", lambda: _aliases(registry, name).get("champion") == version and len(
        [e for e in gl.events(subject=deployment) if e["kind"] == "mlflow.alias_reverted"]) == 2)
    assert gl.entity(deployment)["state"]["live_model"] == model


def _aliases(registry, name):
    return dict((a, v) for a, v in registry.get_registered_model(name).aliases.items())


def _post(url, body: bytes, headers):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _signed(body: bytes, secret: str, delivery: str, timestamp: str):
    mac = hmac.new(secret.encode(), f"{delivery}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": timestamp, "X-MLflow-Signature": "v1," + base64.b64encode(mac).decode()}


def test_forged_deliveries_are_refused_and_write_nothing(bridged):
    url = f"{bridged.url}/api/v1/integrations/mlflow"
    head = lambda: bridged.client("admin")._json("GET", "/api/v1/head")["size"]  # noqa: E731
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "now",
                       "data": {"name": "fraud", "alias": "champion", "version": "1"}}).encode()
    before = head()
    now = str(int(time.time()))
    cases = {
        "wrong secret": _signed(body, "not-the-secret", "d-1", now),
        "no signature": {"X-MLflow-Delivery-Id": "d-2", "X-MLflow-Timestamp": now},
        "old timestamp": _signed(body, SECRET, "d-3", str(int(time.time()) - 3600)),
        "other body": _signed(b"{}", SECRET, "d-4", now),
    }
    for case, headers in cases.items():
        status, answer = _post(url, body, headers)
        assert (status, answer["error"]) == (401, "invalid_signature"), (case, answer)
    assert head() == before


def _create_versions(client, count: int, models: int):
    names = [f"bulk-{uuid.uuid4().hex[:6]}-{i}" for i in range(models)]
    runs = [train_run(n)[0] for n in names]
    for n in names:
        client.create_registered_model(n)
    jobs = [(names[i % models], runs[i % models]) for i in range(count)]

    def create(job):
        name, run_id = job
        return client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)

    # One at a time per model keeps MLflow's version numbers dense.
    with ThreadPoolExecutor(max_workers=models) as pool:
        list(pool.map(lambda n: [create((n, runs[names.index(n)])) for _ in range(count // models)], names))
    return names


def _import(mlflow_server, data_dir: Path, *extra: str) -> str:
    done = subprocess.run(
        [binary(), "mlflow", "import", "--tracking-uri", mlflow_server.url, "--data-dir", str(data_dir), *extra],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_a_thousand_versions_twice_writes_them_once(mlflow_server, tmp_path: Path):
    require_mlflow()
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(mlflow_server.url)
    time.sleep(1.5)  # MLflow caches its webhook list for a second: let the deleted one go

    client = MlflowClient(mlflow_server.url)
    names = _create_versions(client, 1000, 10)
    ledger = tmp_path / "ledger"
    # A partial import first: the full one resumes from it.
    partial = _import(mlflow_server, ledger, "--model", names[0])
    assert "imported 100 versions of 1 models" in partial
    first = _import(mlflow_server, ledger, *sum((["--model", n] for n in names), []))
    assert "imported 1000 versions of 10 models" in first
    second = _import(mlflow_server, ledger, *sum((["--model", n] for n in names), []))
    assert "imported 1000 versions of 10 models: 0 events written" in second, second
    with sqlite3.connect(ledger / "govledger.db") as db:
        registered = db.execute("SELECT COUNT(*), COUNT(DISTINCT subject) FROM events WHERE kind = 'model.registered'").fetchone()
    assert registered == (1000, 1000)
    verified = subprocess.run([binary(), "verify", "--data-dir", str(ledger)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    unknown = subprocess.run(
        [binary(), "mlflow", "import", "--tracking-uri", mlflow_server.url, "--data-dir", str(ledger), "--model", "no-such-model"],
        capture_output=True, text=True,
    )
    assert unknown.returncode != 0 and "no-such-model" in unknown.stderr
    assert os.path.exists(ledger / "govledger.db")


def test_the_mlflow_walkthrough_runs(registry, bridged, monkeypatch):
    """examples/mlflow/walkthrough.py, as a reader runs it."""
    import importlib.util

    from conftest import ROOT

    monkeypatch.setenv("GOVLEDGER_URL", bridged.url)
    for variable, who in (("DS_TOKEN", "dana"), ("RISK1_TOKEN", "rita"), ("RISK2_TOKEN", "ravi")):
        monkeypatch.setenv(variable, bridged.tokens[who])
    spec = importlib.util.spec_from_file_location("walkthrough", ROOT / "examples" / "mlflow" / "walkthrough.py")
    walkthrough = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(walkthrough)
    assert walkthrough.main() == 0


def test_a_server_without_the_bridge_refuses_deliveries(server):
    url = f"{server.url}/api/v1/integrations/mlflow"
    body = b'{"entity": "model_version", "action": "created", "data": {}}'
    status, answer = _post(url, body, {})
    assert (status, answer["error"]) == (401, "invalid_signature")
    status, answer = _post(url, body, _signed(body, SECRET, "d-9", str(int(time.time()))))
    assert (status, answer["error"]) == (404, "integration_not_configured")


def test_a_version_of_another_project_is_not_extended(mlflow_server, bridged):
    """A registry mirrored into project fraud cannot add to a credit model."""
    require_mlflow()
    from mlflow import MlflowClient

    name = f"clash-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(mlflow_server.url)  # no webhook: the delivery below is the only one
    client.create_registered_model(name)
    client.create_model_version(name, source="s3://models/clash")
    dana = bridged.client("dana")
    dana.append("model.registered", f"model:{name}@1", project="credit", inputs=[f"run:{name}-train"])
    before = bridged.client("admin")._json("GET", "/api/v1/head")["size"]
    body = json.dumps({"entity": "model_version", "action": "created", "timestamp": "now",
                       "data": {"name": name, "version": "1"}}).encode()
    status, answer = _post(f"{bridged.url}/api/v1/integrations/mlflow", body, _signed(body, SECRET, uuid.uuid4().hex, str(int(time.time()))))
    assert (status, answer["error"]) == (403, "project_mismatch"), answer
    assert bridged.client("admin")._json("GET", "/api/v1/head")["size"] == before
