"""The client against a real server: the calls a data scientist's pipeline and
a CI job make, and the errors they must be able to tell apart."""
import http.server
import json
import threading
import uuid
from pathlib import Path

import pytest

from govledger import Client, DeploymentBlocked, GovledgerError
from govledger import verify


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def train(gl: Client, model: str, project: str = "fraud") -> None:
    """Data, a run that trains `model` on it, the version and a passing
    evaluation on held-out data: what the production gate asks for."""
    data = f"dataset:{unique('tx')}@1"
    holdout = f"dataset:{unique('holdout')}@1"
    run = f"run:{unique('train')}"
    gl.append_batch(
        [
            {"kind": "dataset.version_created", "subject": data, "project": project},
            {"kind": "dataset.version_created", "subject": holdout, "project": project},
        ]
    )
    with gl.run(run, project=project, inputs=[data], outputs=[model]) as r:
        r.metrics["train_auc"] = 0.97
    gl.append("model.registered", model, project=project, inputs=[run])
    gl.append(
        "model.evaluated",
        model,
        project=project,
        inputs=[holdout],
        attributes={"metrics": {"auc": 0.95}, "thresholds": {"auc": 0.9}, "passed": True},
    )


def test_append_is_idempotent_and_keeps_the_canonical_attributes(server):
    gl = server.client("dana")
    key = unique("key")
    attributes = {"metrics": {"auc": 0.30000000000000004, "loss": 1e-7}}
    first = gl.append("run.completed", f"run:{unique('r')}", project="fraud", attributes=attributes, idempotency_key=key)
    again = gl.append("run.completed", first["subject"], project="fraud", attributes=attributes, idempotency_key=key)
    assert again["seq"] == first["seq"] and again["hash"] == first["hash"]
    stored = gl.event(first["seq"])
    verify.verify_event(stored)


def test_batches_are_atomic_and_errors_carry_the_api_code(server):
    gl = server.client("dana")
    subject = f"dataset:{unique('dup')}@1"
    with pytest.raises(GovledgerError) as refused:
        gl.append_batch(
            [
                {"kind": "dataset.version_created", "subject": subject, "project": "fraud"},
                {"kind": "dataset.version_created", "subject": "not a reference", "project": "fraud"},
            ]
        )
    assert refused.value.code == "invalid_event" and refused.value.status == 422
    # Nothing of the refused batch was written.
    assert list(gl.events(subject=subject)) == []
    with pytest.raises(GovledgerError) as forbidden:
        server.client("audra").append("dataset.version_created", subject, project="fraud")
    assert forbidden.value.code == "forbidden" and forbidden.value.status == 403
    with pytest.raises(GovledgerError) as unauthenticated:
        Client(server.url, "not-a-token").gate("model:x@1", "production")
    assert unauthenticated.value.code == "unauthenticated"


def test_gate_approval_and_deployment_flow(server):
    dana, rita, ravi, ci = (server.client(n) for n in ("dana", "rita", "ravi", "ci-bot"))
    model = f"model:{unique('scorer')}@1"
    train(dana, model)

    denied = ci.gate(model, "production")
    assert not denied.allowed and not denied
    assert any("approval" in r for r in denied.reasons), denied.reasons
    with pytest.raises(DeploymentBlocked) as blocked:
        ci.deploy(model, "production")
    assert blocked.value.code == "deployment_blocked" and blocked.value.blocked_event_seq
    assert blocked.value.reasons == blocked.value.gate["reasons"] and blocked.value.reasons

    approval = dana.request_approval(model, "production", note="quarterly refresh")
    assert approval["state"] == "pending"
    with pytest.raises(GovledgerError) as own:
        # Separation of duties: whoever requested may not decide.
        server.client("dana").decide(approval["id"], "grant", "mine")
    assert own.value.code in ("forbidden", "separation_of_duties")
    rita.decide(approval["id"], "grant", "validation report reviewed")
    assert not ci.gate(model, "production").allowed
    ravi.decide(approval["id"], "grant", "second pair of eyes")
    allowed = ci.gate(model, "production")
    assert allowed.allowed, allowed.reasons
    deployed = ci.deploy(model, "production", reason="release 3")
    assert deployed["event"]["kind"] == "deployment.requested"

    with pytest.raises(GovledgerError) as unknown:
        ci.gate(model, "prodution")
    assert unknown.value.code == "unknown_environment"


def test_failed_runs_are_recorded_and_reraised(server):
    gl = server.client("dana")
    run = f"run:{unique('broken')}"
    with pytest.raises(RuntimeError, match="out of memory"):
        with gl.run(run, project="fraud"):
            raise RuntimeError("out of memory")
    kinds = [e["kind"] for e in gl.history(run)]
    assert kinds == ["run.started", "run.failed"]
    failed = list(gl.events(subject=run, kind="run.failed"))[0]
    assert "out of memory" in failed["attributes"]["error"]


def test_reading_lineage_impact_entity_and_search_page_by_page(server):
    dana = server.client("dana")
    model = f"model:{unique('ranker')}@1"
    train(dana, model)
    nodes = [n for n in dana.lineage(model, direction="upstream") if n.get("type") != "edge"]
    refs = {n.get("ref") or n.get("id") for n in nodes}
    assert any(r and r.startswith("run:") for r in refs), nodes
    assert any(r and r.startswith("dataset:") for r in refs), nodes
    data = next(r for r in refs if r and r.startswith("dataset:tx"))
    impacted = list(dana.impact(data))
    assert any(item["type"] == "model_version" for item in impacted), impacted
    entity = dana.entity(model)
    assert entity["ref"] == model and entity["history"]

    marker = unique("pagedmarker")
    dana.append_batch(
        [{"kind": "dataset.version_created", "subject": f"dataset:{marker}-{i}@1", "project": "fraud", "attributes": {"description": marker}} for i in range(7)]
    )
    hits = list(dana.search(marker, page_size=3, consistent=True))
    assert len(hits) == 7 and len({h["seq"] for h in hits}) == 7

    events = list(dana.events(after_seq=0, page_size=5))
    assert verify.verify_chain(events) == len(events) >= 7


def test_reports_are_written_to_files(server, tmp_path: Path):
    gl = server.client("audra")
    path = gl.report("audit-trail", tmp_path / "trail.pdf", project="fraud")
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]
    as_json = gl.report("audit-trail", tmp_path / "trail.json", format="json", project="fraud")
    assert json.loads(Path(as_json).read_text())
    with pytest.raises(GovledgerError) as bad:
        gl.report("no-such-report", tmp_path / "x.pdf")
    assert bad.value.status in (404, 422) and not (tmp_path / "x.pdf").exists()


def test_checkpoints_and_proofs_verify_independently(server):
    gl = server.client("audra")
    server.client("dana").append("dataset.version_created", f"dataset:{unique('p')}@1", project="fraud")
    older = gl.checkpoint()
    assert older.size >= 1 and len(older.root_hash) == 64
    newest = server.client("dana").append("dataset.version_created", f"dataset:{unique('p')}@1", project="fraud")
    newer = gl.checkpoint()
    assert newer.size > older.size
    gl.prove_inclusion(newest["seq"], newer)
    gl.prove_inclusion(1, older)
    gl.prove_consistency(older, newer)
    # A checkpoint with a root the server never signed does not verify.
    forged = older.note.replace(older.note.split("\n")[2], verify.base64.b64encode(b"\x00" * 32).decode())
    with pytest.raises(verify.VerificationError):
        verify.verify_checkpoint(forged, older.key)
    # Roots that do not belong together fail the consistency check.
    with pytest.raises(verify.VerificationError):
        verify.verify_consistency(older.size, newer.size, b"\x00" * 32, newer.checkpoint.root_hash, [])


def test_pinned_key_that_did_not_sign_is_refused(server):
    other = verify.VerifierKey("someone-else", b"\x00\x00\x00\x00", b"\x01" * 32)
    gl = Client(server.url, server.tokens["audra"], verifier_key=None)
    gl._pinned_key = other  # what a caller pinning the wrong key gets
    with pytest.raises(verify.VerificationError, match="no signature"):
        gl.checkpoint()


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 with Retry-After to the first request, then forwards."""

    seen: list = []
    target = ""

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Flaky.seen.append(json.loads(body))
        if len(_Flaky.seen) == 1:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error":"storage_unavailable","message":"try again"}')
            return
        import urllib.request

        request = urllib.request.Request(self.target + self.path, data=body, method="POST")
        for header in ("Authorization", "Content-Type"):
            request.add_header(header, self.headers[header])
        with urllib.request.urlopen(request) as answer:
            payload = answer.read()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_retries_honour_retry_after_and_reuse_the_idempotency_key(server):
    _Flaky.seen, _Flaky.target = [], server.url
    proxy = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        gl = Client(f"http://127.0.0.1:{proxy.server_port}", server.tokens["dana"])
        stored = gl.append("dataset.version_created", f"dataset:{unique('retry')}@1", project="fraud")
    finally:
        proxy.shutdown()
    assert len(_Flaky.seen) == 2
    assert _Flaky.seen[0]["idempotency_key"] == _Flaky.seen[1]["idempotency_key"] == stored["idempotency_key"]
