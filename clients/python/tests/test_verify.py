"""The independent verifier against the published vectors and against
bundles the server makes, and the console script a CI image runs."""
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

from govledger import cli, verify

from conftest import ROOT
from test_client import train

VECTORS = ROOT / "docs" / "ledger-test-vectors.json"


def test_published_vectors_verify():
    assert verify.verify_vectors(str(VECTORS)) == 3


def test_a_changed_vector_is_caught(tmp_path: Path):
    text = VECTORS.read_text(encoding="utf-8").replace('"actor": "alice"', '"actor": "mallory"', 1)
    assert "mallory" in text
    changed = tmp_path / "vectors.json"
    changed.write_text(text, encoding="utf-8")
    with pytest.raises(verify.VerificationError):
        verify.verify_vectors(str(changed))


@pytest.fixture()
def bundle(server, tmp_path: Path) -> Path:
    gl = server.client("dana")
    subject = f"dataset:bundled-{uuid.uuid4().hex[:8]}@1"
    gl.append("dataset.version_created", subject, project="fraud", attributes={"description": "zaïre 中文", "row_count": 3})
    gl.append("dataset.classified", subject, project="fraud", attributes={"contains_personal_data": False})
    directory = tmp_path / "bundle"
    server.cli("export", "--bundle", str(directory), "--subject", subject)
    return directory


def test_server_bundles_verify_and_pinned_keys_prove_the_signer(server, bundle: Path):
    report = verify.verify_bundle(str(bundle))
    assert report.events == 2 and not report.key_pinned
    key = verify.VerifierKey.parse(server.cli("key", "show"))
    assert verify.verify_bundle(str(bundle), key).key_pinned


@pytest.mark.parametrize(
    "tamper, item",
    [
        (lambda d: _edit(_first(d / "events"), "zaïre", "zaire"), "events/"),
        (lambda d: _edit(_first(d / "proofs"), '"audit_path":["', '"audit_path":["0'), "proofs/"),
        (lambda d: _edit(d / "checkpoint.txt", "\n\n", "\n\n\n"), "checkpoint"),
        (lambda d: shutil.copy(_first(d / "events"), d / "events" / "999999999999.json"), "events/999999999999.json"),
        (lambda d: _first(d / "proofs").unlink(), "proofs/"),
    ],
    ids=["altered-event", "altered-proof", "altered-checkpoint", "unlisted-file", "missing-proof"],
)
def test_tampered_bundles_fail_naming_the_item(bundle: Path, tamper, item: str):
    tamper(bundle)
    with pytest.raises(verify.VerificationError) as failed:
        verify.verify_bundle(str(bundle))
    assert failed.value.item.startswith(item), failed.value


def test_a_foreign_pinned_key_is_refused(bundle: Path):
    foreign = verify.VerifierKey.parse(_vkey("other.example/ledger", b"\x07" * 32))
    with pytest.raises(verify.VerificationError, match="key"):
        verify.verify_bundle(str(bundle), foreign)


def test_console_script_exit_codes(server, bundle: Path, capsys):
    assert cli.main(["verify-bundle", str(bundle)]) == 0
    assert "OK: 2 events" in capsys.readouterr().out
    _edit(_first(bundle / "events"), "zaïre", "zaire")
    assert cli.main(["verify-bundle", str(bundle)]) == 1
    assert "FAIL: events/" in capsys.readouterr().out

    os.environ["GOVLEDGER_TOKEN"] = server.tokens["ci-bot"]
    try:
        assert cli.main(["gate", "--url", server.url, "--model", "model:never-trained@1", "--environment", "production"]) == 1
        assert "DENY" in capsys.readouterr().err
        model = f"model:cli-{uuid.uuid4().hex[:8]}@1"
        train(server.client("dana"), model)
        assert cli.main(["gate", "--url", server.url, "--model", model, "--environment", "dev"]) == 0
        assert "ALLOW" in capsys.readouterr().err
        assert cli.main(["gate", "--url", server.url, "--model", "model:x@1", "--environment", "prodution"]) == 2
        assert "unknown_environment" in capsys.readouterr().err
    finally:
        del os.environ["GOVLEDGER_TOKEN"]


def test_installed_console_script_runs(bundle: Path):
    script = os.path.join(sysconfig.get_path("scripts"), "govledger-py")
    if not os.path.exists(script):
        if os.environ.get("CI"):
            pytest.fail(f"govledger-py is not installed for {sys.executable}: .ci/run installs it")
        pytest.skip("govledger-py is not installed (pip install ./clients/python)")
    done = subprocess.run([script, "verify-bundle", str(bundle)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sys.version_info >= (3, 9)


def _first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _vkey(name: str, public_key: bytes) -> str:
    import base64
    import hashlib

    key = b"\x01" + public_key
    key_id = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(key).decode()}"
