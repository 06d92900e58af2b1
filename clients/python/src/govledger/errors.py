"""The exceptions the client raises; each carries the API's stable error code."""
from typing import Any, Dict, Optional


class GovledgerError(Exception):
    """An error answer of the API: `code` is its `error` field (README.md lists
    them), `status` the HTTP status, `body` the whole decoded answer."""

    def __init__(self, code: str, message: str, status: int = 0, body: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.body: Dict[str, Any] = body or {}


class DeploymentBlocked(GovledgerError):
    """The gate denied a deployment; `gate` holds its decision, with reasons,
    and `blocked_event_seq` the `deployment.blocked` event on the record."""

    @property
    def gate(self) -> "Dict[str, Any]":
        return self.body.get("gate") or {}

    @property
    def reasons(self) -> "list[str]":
        return list(self.gate.get("reasons", []))

    @property
    def blocked_event_seq(self) -> Optional[int]:
        return self.body.get("blocked_event_seq")


class ConnectionFailed(GovledgerError):
    """The server could not be reached (after the retries)."""

    def __init__(self, message: str) -> None:
        super().__init__("connection_failed", message)
