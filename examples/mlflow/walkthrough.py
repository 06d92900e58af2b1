#!/usr/bin/env python3
"""MLflow with govledger as its governance layer, end to end.

Trains a scikit-learn model with MLflow, registers it, and watches it appear
in govledger with its run and training data; points the `champion` alias at
it before anyone approved it (govledger blocks it and moves the alias back);
records a held-out evaluation, requests approval, has two risk officers grant
it; sets `champion` again, and the gate allows it.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 GOVLEDGER_URL=http://127.0.0.1:8080 \\
    DS_TOKEN=... RISK1_TOKEN=... RISK2_TOKEN=... python3 walkthrough.py

(walkthrough.sh starts both servers, the webhook and the tokens for you.)
"""
import os
import sys
import time
import uuid

import mlflow
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from govledger import Client, GovledgerError


def wait(what, check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def entity(gl, ref):
    try:
        return gl.entity(ref)
    except GovledgerError as e:
        if e.code == "not_found":
            return None
        raise


def main(name=None) -> int:
    url = os.environ["GOVLEDGER_URL"]
    data_scientist = Client(url, os.environ["DS_TOKEN"])
    risk = [Client(url, os.environ["RISK1_TOKEN"]), Client(url, os.environ["RISK2_TOKEN"])]
    mlflow_client = MlflowClient()
    name = name or f"iris-classifier-{uuid.uuid4().hex[:6]}"

    print(f"1. Train {name} with MLflow, logging its training and evaluation data")
    x, y = load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=7)
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_numpy(x_train, targets=y_train, name="iris-train"), context="training")
        mlflow.log_input(mlflow.data.from_numpy(x_test, targets=y_test, name="iris-holdout"), context="eval")
        model = LogisticRegression(max_iter=200, C=1.0).fit(x_train, y_train)
        accuracy = float(model.score(x_test, y_test))
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("holdout_accuracy", accuracy)
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    version = max(int(v.version) for v in mlflow_client.search_model_versions(f"name='{name}'"))
    ref = f"model:{name}@{version}"

    print(f"2. It appears in govledger as {ref}, with its run and data")
    wait(ref, lambda: entity(data_scientist, ref))
    upstream = [n["ref"] for n in data_scientist.lineage(ref, direction="upstream") if n.get("type") != "edge"]
    print("   upstream:", ", ".join(sorted(upstream)))

    print("3. champion is set before anyone approved it: blocked, and moved back in MLflow")
    mlflow_client.set_registered_model_alias(name, "champion", str(version))
    deployment = f"deployment:production/{name}"
    blocked = wait("deployment.blocked", lambda: [e for e in data_scientist.events(subject=deployment) if e["kind"] == "deployment.blocked"])
    print("   blocked:", "; ".join(blocked[0]["attributes"]["reasons"]))
    wait("the alias to be removed", lambda: "champion" not in mlflow_client.get_registered_model(name).aliases)
    print("   champion alias in MLflow now:", mlflow_client.get_registered_model(name).aliases.get("champion"))

    print("4. The held-out evaluation goes on the record; approval is requested and granted twice")
    holdout = f"dataset:{name}-holdout@1"
    data_scientist.append("dataset.version_created", holdout, project="fraud", attributes={"row_count": len(y_test)})
    data_scientist.append("model.evaluated", ref, project="fraud", inputs=[holdout],
                          attributes={"metrics": {"accuracy": accuracy}, "thresholds": {"accuracy": 0.9},
                                      "passed": accuracy >= 0.9})
    approval = data_scientist.request_approval(ref, "production", note="iris classifier, first release")
    for officer, reason in zip(risk, ("validation report reviewed", "second review")):
        officer.decide(approval["id"], "grant", reason)
    print("   gate:", "allow" if data_scientist.gate(ref, "production").allowed else "deny")

    print("5. champion is set again: recorded as a deployment, and it stays")
    mlflow_client.set_registered_model_alias(name, "champion", str(version))
    wait("deployment.succeeded", lambda: [e for e in data_scientist.events(subject=deployment) if e["kind"] == "deployment.succeeded"])
    time.sleep(1.0)
    print("   champion alias in MLflow now:", mlflow_client.get_registered_model(name).aliases.get("champion"))
    print("   live in production:", data_scientist.entity(deployment)["state"].get("live_model"))
    assert mlflow_client.get_registered_model(name).aliases.get("champion") == str(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
