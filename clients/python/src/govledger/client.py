"""The HTTP client: every call goes through the same retry, error and
authentication path, on the standard library alone."""
import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import verify as _verify
from .errors import ConnectionFailed, DeploymentBlocked, GovledgerError

Event = Dict[str, Any]
JSON = Dict[str, Any]

# Statuses after which the same request, with the same idempotency key, may
# succeed: the server says so (429 and 503 carry Retry-After) or a proxy failed.
_RETRY_STATUSES = (429, 502, 503, 504)


@dataclass(frozen=True)
class GateResult:
    """The gate's answer: `allowed`, and `reasons` a person can read."""

    allowed: bool
    reasons: List[str]
    decision: JSON = field(repr=False)

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class SignedCheckpoint:
    """The latest checkpoint: the signed note, and its parsed, verified body."""

    note: str
    checkpoint: _verify.Checkpoint
    key: _verify.VerifierKey

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root_hash(self) -> str:
        return self.checkpoint.root_hex


class Client:
    """A govledger server at `url`, called with the bearer `token`.

    Both default to the `GOVLEDGER_URL` and `GOVLEDGER_TOKEN` environment
    variables. Appends are retried `retries` times on a lost connection, 429
    or 503, sleeping as `Retry-After` says (capped by `max_retry_wait`), with
    idempotency keys fixed before the first try so a retry never records twice.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        max_retry_wait: float = 30.0,
        verifier_key: Optional[str] = None,
    ) -> None:
        url = url or os.environ.get("GOVLEDGER_URL")
        token = token or os.environ.get("GOVLEDGER_TOKEN")
        if not url:
            raise ValueError("no server URL: pass url= or set GOVLEDGER_URL")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the server URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self.token = (token or "").strip() or None
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        # A key pinned by the caller proves who signed; the server's own only integrity.
        self._pinned_key = _verify.VerifierKey.parse(verifier_key) if verifier_key else None

    # --- transport ---------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Mapping[str, Any]] = None,
        body: Any = None,
        retry: bool = False,
        accept: str = "application/json",
    ) -> "tuple[int, Dict[str, str], bytes]":
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                path += "?" + urllib.parse.urlencode(pairs, doseq=True)
        data = None if body is None else json.dumps(body).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            request = urllib.request.Request(self.url + path, data=data, method=method)
            request.add_header("Accept", accept)
            request.add_header("User-Agent", "govledger-python/0.1")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            if self.token:
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, dict(response.headers.items()), response.read()
            except urllib.error.HTTPError as e:
                status, headers, payload = e.code, dict(e.headers.items()), e.read()
                if retry and status in _RETRY_STATUSES and attempt <= self.retries:
                    time.sleep(self._wait(headers.get("Retry-After"), attempt))
                    continue
                raise _error(status, payload) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                if retry and attempt <= self.retries:
                    time.sleep(self._wait(None, attempt))
                    continue
                raise ConnectionFailed(f"{method} {self.url}{path}: {getattr(e, 'reason', e)}") from None

    def _wait(self, retry_after: Optional[str], attempt: int) -> float:
        if retry_after is not None:
            try:
                return float(min(max(float(retry_after), 0.0), self.max_retry_wait))
            except ValueError:
                pass
        return min(0.1 * 2.0 ** (attempt - 1), self.max_retry_wait)

    def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        _, _, payload = self._request(method, path, **kwargs)
        answer: JSON = json.loads(payload.decode("utf-8"))
        return answer

    # --- events ------------------------------------------------------------

    def append(
        self,
        kind: str,
        subject: str,
        *,
        project: Optional[str] = None,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        attributes: Optional[Mapping[str, Any]] = None,
        occurred_at: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Event:
        """Record one event; returns it as stored, with seq and hash."""
        event = _event(kind, subject, project, inputs, outputs, attributes, occurred_at, idempotency_key)
        return self._json("POST", "/api/v1/events", body=event, retry=True)

    def append_batch(self, events: Sequence[Mapping[str, Any]]) -> List[Event]:
        """Record events atomically, in order: all or none.

        Each is a mapping with `kind`, `subject` and the optional fields of
        :meth:`append`; events without an idempotency key get one, fixed before
        the first try.
        """
        batch = []
        for e in events:
            unknown = set(e) - {"kind", "subject", "project", "inputs", "outputs", "attributes", "occurred_at", "idempotency_key"}
            if unknown:
                raise ValueError(f"unknown event fields: {', '.join(sorted(unknown))}")
            batch.append(
                _event(
                    e["kind"],
                    e["subject"],
                    e.get("project"),
                    e.get("inputs", ()),
                    e.get("outputs", ()),
                    e.get("attributes"),
                    e.get("occurred_at"),
                    e.get("idempotency_key"),
                )
            )
        stored: List[Event] = self._json("POST", "/api/v1/events", body={"events": batch}, retry=True)["events"]
        return stored

    def event(self, seq: int) -> Event:
        """One event, with `attributes_canonical` kept for hash checks."""
        _, _, payload = self._request("GET", f"/api/v1/events/{int(seq)}")
        text = payload.decode("utf-8")
        event: Event = json.loads(text)
        event["attributes_canonical"] = _verify.raw_attributes(text)[0]
        return event

    def events(
        self,
        *,
        kind: Optional[str] = None,
        subject: Optional[str] = None,
        actor: Optional[str] = None,
        after_seq: int = 0,
        page_size: int = 1000,
    ) -> Iterator[Event]:
        """Every event the token may read, oldest first, page by page; each
        keeps `attributes_canonical`, so :func:`govledger.verify.verify_chain`
        can check them."""
        after: Optional[int] = after_seq
        while after is not None:
            query = {"kind": kind, "subject": subject, "actor": actor, "after_seq": after, "limit": page_size}
            _, _, payload = self._request("GET", "/api/v1/events", query=query)
            text = payload.decode("utf-8")
            page = json.loads(text)
            for event, raw in zip(page["events"], _verify.raw_attributes(text)):
                event["attributes_canonical"] = raw
                yield event
            after = page.get("next_after_seq")

    @contextlib.contextmanager
    def run(
        self,
        run: str,
        *,
        project: Optional[str] = None,
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        attributes: Optional[Mapping[str, Any]] = None,
    ) -> Iterator["RunRecorder"]:
        """Record a pipeline run: `run.started` on entry (reading `inputs`),
        then `run.completed` (producing `outputs`) or, if the block raises,
        `run.failed` with the error, which is re-raised.

            with gl.run("run:train-17", project="fraud", inputs=["dataset:tx@2026-12"],
                        outputs=["model:fraud@3"]) as r:
                r.metrics["auc"] = train()
        """
        recorder = RunRecorder(outputs=list(outputs))
        key = uuid.uuid4().hex
        self.append(
            "run.started",
            run,
            project=project,
            inputs=inputs,
            attributes=dict(attributes or {}),
            idempotency_key=f"{key}-started",
        )
        try:
            yield recorder
        except BaseException as e:
            self.append(
                "run.failed",
                run,
                project=project,
                attributes={"error": f"{type(e).__name__}: {e}"[:2000]},
                idempotency_key=f"{key}-failed",
            )
            raise
        done: Dict[str, Any] = {}
        if recorder.metrics:
            done["metrics"] = recorder.metrics
        self.append(
            "run.completed",
            run,
            project=project,
            outputs=recorder.outputs,
            attributes=done,
            idempotency_key=f"{key}-completed",
        )

    # --- governance --------------------------------------------------------

    def gate(self, model: str, environment: str) -> GateResult:
        """May `model` (model:NAME@VERSION) go to `environment`? An
        environment the policy does not declare is an error (code
        `unknown_environment`), never an answer."""
        decision = self._json("GET", "/api/v1/gate", query={"model": model, "environment": environment})
        return GateResult(bool(decision.get("allowed")), list(decision.get("reasons", [])), decision)

    def request_approval(
        self,
        model: str,
        environment: str,
        *,
        project: Optional[str] = None,
        evidence: Sequence[str] = (),
        note: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> JSON:
        """Ask for approval of `model` in `environment`; returns the approval."""
        body: Dict[str, Any] = {
            "model": model,
            "environment": environment,
            "evidence": list(evidence),
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        if project is not None:
            body["project"] = project
        if note is not None:
            body["note"] = note
        return self._json("POST", "/api/v1/approvals", body=body, retry=True)

    def approvals(self, *, state: Optional[str] = None, model: Optional[str] = None, environment: Optional[str] = None) -> Iterator[JSON]:
        """Approvals the token may read, page by page."""
        after: Optional[int] = None
        while True:
            query = {"state": state, "model": model, "environment": environment, "after_seq": after}
            page = self._json("GET", "/api/v1/approvals", query=query)
            yield from page.get("approvals", [])
            after = page.get("next_after_seq")
            if after is None:
                return

    def decide(self, approval_id: str, decision: str, reason: str, *, override_reason: Optional[str] = None) -> JSON:
        """Record a decision on an approval: `grant`, `reject` or `revoke`,
        with the reason; `override_reason` when granting a version that fails
        one of the environment's rules."""
        body: Dict[str, Any] = {"decision": decision, "reason": reason}
        if override_reason is not None:
            body["override_reason"] = override_reason
        return self._json("POST", f"/api/v1/approvals/{urllib.parse.quote(approval_id, safe='')}/decision", body=body)

    def deploy(
        self,
        model: str,
        environment: str,
        *,
        name: Optional[str] = None,
        project: Optional[str] = None,
        reason: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> JSON:
        """Ask to deploy; the gate decides. Raises :class:`DeploymentBlocked`
        (with the gate's reasons) when it denies; the refusal is on the record."""
        body: Dict[str, Any] = {"model": model, "environment": environment, "idempotency_key": idempotency_key or uuid.uuid4().hex}
        for key, value in (("name", name), ("project", project), ("reason", reason)):
            if value is not None:
                body[key] = value
        return self._json("POST", "/api/v1/deployments", body=body, retry=True)

    # --- reading -----------------------------------------------------------

    def entity(self, ref: str) -> JSON:
        """An entity: state, live edges, and (at most 1,000 events of) history;
        :meth:`history` walks all of it."""
        return self._json("GET", f"/api/v1/entities/{urllib.parse.quote(ref, safe='')}")

    def history(self, ref: str) -> Iterator[Event]:
        """Every event about `ref`, oldest first, page by page."""
        return self.events(subject=ref)

    def lineage(self, node: str, *, direction: str = "both", depth: int = 10, as_of: Optional[str] = None, limit: Optional[int] = None) -> Iterator[JSON]:
        """The nodes of the lineage graph around `node`, then its edges (each
        with `"type": "edge"`). The server answers one bounded graph; when it
        was cut at `limit`, the last item is `{"type": "truncated",
        "omitted_nodes": N}` so a caller never mistakes a cut graph for all of it."""
        graph = self.lineage_graph(node, direction=direction, depth=depth, as_of=as_of, limit=limit)
        yield from graph["nodes"]
        for edge in graph["edges"]:
            yield dict(edge, type="edge")
        if graph.get("truncated"):
            yield {"type": "truncated", "omitted_nodes": graph.get("omitted_nodes", 0)}

    def lineage_graph(self, node: str, *, direction: str = "both", depth: int = 10, as_of: Optional[str] = None, limit: Optional[int] = None) -> JSON:
        """The lineage answer as the API gives it (nodes, edges, truncation)."""
        query = {"node": node, "direction": direction, "depth": depth, "as_of": as_of, "limit": limit}
        return self._json("GET", "/api/v1/lineage", query=query)

    def impact(self, node: str, *, limit: Optional[int] = None) -> Iterator[JSON]:
        """What is downstream of `node`: each model version (`"type": "model_version"`),
        then each live deployment serving one (`"type": "live_deployment"`),
        then `{"type": "truncated", ...}` if the walk stopped at its limit."""
        answer = self._json("GET", "/api/v1/impact", query={"node": node, "limit": limit})
        for version in answer["model_versions"]:
            yield dict(version, type="model_version")
        for live in answer["live_deployments"]:
            yield dict(live, type="live_deployment")
        if answer.get("truncated"):
            yield {"type": "truncated", "omitted_nodes": answer.get("omitted_nodes", 0)}

    def search(self, q: str = "", *, page_size: int = 100, consistent: bool = False, **filters: Any) -> Iterator[JSON]:
        """Every hit of a search, page after page (filters: kind, entity_type,
        actor, project, from, to (as `from_`/`to`), sort). With `consistent`,
        the server first waits for its index to hold every event appended
        before the call (else it may lag by a moment)."""
        if "from_" in filters:
            filters["from"] = filters.pop("from_")
        cursor: Optional[str] = None
        while True:
            query = dict(filters, q=q or None, limit=page_size, cursor=cursor, consistent="true" if consistent else None)
            page = self._json("GET", "/api/v1/search", query=query)
            yield from page["hits"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def report(self, report_type: str, path: Union[str, "os.PathLike[str]"], *, format: str = "pdf", **params: Any) -> str:
        """Write a report (`model-dossier`, `audit-trail`, ...) to `path`;
        params are the API's (subject, project, from_, to). Returns the path."""
        if "from_" in params:
            params["from"] = params.pop("from_")
        accept = {"pdf": "application/pdf", "json": "application/json", "csv": "text/csv"}.get(format, "*/*")
        _, _, payload = self._request(
            "GET", f"/api/v1/reports/{urllib.parse.quote(report_type, safe='')}", query=dict(params, format=format), accept=accept
        )
        target = os.fspath(path)
        tmp = f"{target}.part"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, target)
        return target

    # --- proofs ------------------------------------------------------------

    def verifier_key(self) -> _verify.VerifierKey:
        """The key checkpoints are checked with: the one pinned at construction,
        else the server's own (which proves integrity, not who signed)."""
        if self._pinned_key is not None:
            return self._pinned_key
        _, _, payload = self._request("GET", "/api/v1/checkpoint/key", accept="text/plain")
        return _verify.VerifierKey.parse(payload.decode("utf-8"))

    def checkpoint(self, size: Optional[int] = None) -> SignedCheckpoint:
        """The latest signed checkpoint (or the one of tree `size`), verified."""
        _, _, payload = self._request("GET", "/api/v1/checkpoint", query={"size": size}, accept="text/plain")
        note = payload.decode("utf-8")
        key = self.verifier_key()
        return SignedCheckpoint(note, _verify.verify_checkpoint(note, key), key)

    def prove_inclusion(self, seq: int, checkpoint: Optional[SignedCheckpoint] = None) -> SignedCheckpoint:
        """Check that event `seq` is in `checkpoint` (default: the latest);
        raises :class:`govledger.verify.VerificationError` if not."""
        checkpoint = checkpoint or self.checkpoint()
        proof = self._json("GET", "/api/v1/proofs/inclusion", query={"seq": seq, "tree_size": checkpoint.size})
        _verify.verify_inclusion(proof["leaf_index"], checkpoint.size, proof["event_hash"], proof["audit_path"], checkpoint.checkpoint.root_hash)
        event = self.event(seq)
        _verify.verify_event(event)
        if event["hash"] != proof["event_hash"]:
            raise _verify.VerificationError(f"seq {seq}", "the event served is not the one proven")
        return checkpoint

    def prove_consistency(self, older: SignedCheckpoint, newer: Optional[SignedCheckpoint] = None) -> SignedCheckpoint:
        """Check that `newer` (default: the latest) extends `older`: nothing
        the older checkpoint covered was rewritten."""
        newer = newer or self.checkpoint()
        proof = self._json("GET", "/api/v1/proofs/consistency", query={"from": older.size, "to": newer.size})
        _verify.verify_consistency(older.size, newer.size, older.checkpoint.root_hash, newer.checkpoint.root_hash, proof["proof"])
        return newer


@dataclass
class RunRecorder:
    """What a run reports before it completes: `metrics`, and `outputs` it
    may add to or change."""

    outputs: List[str]
    metrics: Dict[str, Any] = field(default_factory=dict)


def _event(
    kind: str,
    subject: str,
    project: Optional[str],
    inputs: Sequence[str],
    outputs: Sequence[str],
    attributes: Optional[Mapping[str, Any]],
    occurred_at: Optional[str],
    idempotency_key: Optional[str],
) -> JSON:
    if isinstance(inputs, str) or isinstance(outputs, str):
        raise TypeError("inputs and outputs are lists of entity references, not one string")
    event: JSON = {
        "kind": kind,
        "subject": subject,
        "inputs": list(inputs),
        "outputs": list(outputs),
        "attributes": dict(attributes or {}),
        # Fixed here, before the first try, so every retry carries the same key.
        "idempotency_key": idempotency_key or uuid.uuid4().hex,
    }
    if project is not None:
        event["project"] = project
    if occurred_at is not None:
        event["occurred_at"] = occurred_at
    return event


def _error(status: int, payload: bytes) -> GovledgerError:
    try:
        body = json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or "error" not in body:
        text = payload.decode("utf-8", "replace")[:500]
        return GovledgerError("http_error", f"HTTP {status}: {text}", status, {})
    code, message = str(body["error"]), str(body.get("message", ""))
    if code == "deployment_blocked" or (code == "unknown_environment" and "blocked_event_seq" in body):
        return DeploymentBlocked(code, message, status, body)
    return GovledgerError(code, message, status, body)
