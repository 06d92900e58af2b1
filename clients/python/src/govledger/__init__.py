"""govledger: a client for the verifiable governance ledger of machine
learning, and an independent verifier of what it serves.

    from govledger import Client
    gl = Client()                      # GOVLEDGER_URL, GOVLEDGER_TOKEN
    gl.append("dataset.version_created", "dataset:tx@2026-12", project="fraud")
    if not gl.gate("model:fraud-detector@3", "production").allowed: ...
"""
from .client import Client, GateResult, RunRecorder, SignedCheckpoint
from .errors import ConnectionFailed, DeploymentBlocked, GovledgerError
from .verify import VerificationError

__all__ = [
    "Client",
    "ConnectionFailed",
    "DeploymentBlocked",
    "GateResult",
    "GovledgerError",
    "RunRecorder",
    "SignedCheckpoint",
    "VerificationError",
]
__version__ = "0.1.0"
