#!/usr/bin/env python3
"""An independent checker for govledger's signed checkpoints and inclusion
proofs, written from the C2SP signed-note / tlog-checkpoint specifications and
RFC 9162 (needs the `cryptography` package for Ed25519).

    GOVLEDGER_TOKEN=... python3 examples/verify_checkpoint.py --url http://127.0.0.1:8080 [--key FILE] [--seq N]

Fetches the latest checkpoint, checks its signature with the verifier key
(from --key, or the server's /api/v1/checkpoint/key), and with --seq checks
that event N is included in the checkpointed tree (the proof needs a bearer
token allowed to read that event, in GOVLEDGER_TOKEN; the checkpoint and the
key are public).
"""
import os
import argparse
import base64
import hashlib
import json
import sys
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def get(url):
    request = urllib.request.Request(url)
    if os.environ.get("GOVLEDGER_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['GOVLEDGER_TOKEN']}")
    with urllib.request.urlopen(request) as r:
        return r.read().decode("utf-8")


def parse_vkey(vkey):
    name, key_id, key_b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(key_b64, validate=True)
    assert key[0] == 0x01 and len(key) == 33, "only Ed25519 keys"
    expected_id = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    assert expected_id.hex() == key_id, "key id does not match the key"
    return name, expected_id, Ed25519PublicKey.from_public_bytes(key[1:])


def verify_note(note, name, key_id, public_key):
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    origin, size, root_b64 = body.rstrip("\n").split("\n")
    for line in signatures.rstrip("\n").split("\n"):
        assert line.startswith("\u2014 "), "signature lines start with an em dash"
        signer, blob_b64 = line[2:].split(" ", 1)
        blob = base64.b64decode(blob_b64, validate=True)
        if signer == name and blob[:4] == key_id:
            public_key.verify(blob[4:], body.encode())
            return origin, int(size), base64.b64decode(root_b64, validate=True)
    raise InvalidSignature("no signature by the expected key")


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, path, root):
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key")
    parser.add_argument("--seq", type=int)
    args = parser.parse_args()
    base = args.url.rstrip("/")
    vkey = open(args.key).read() if args.key else get(f"{base}/api/v1/checkpoint/key")
    name, key_id, public_key = parse_vkey(vkey)
    note = get(f"{base}/api/v1/checkpoint")
    try:
        origin, size, root = verify_note(note, name, key_id, public_key)
    except InvalidSignature as e:
        print(f"FAIL: checkpoint signature: {e}")
        return 1
    print(f"checkpoint OK: origin {origin}, size {size}, root {root.hex()}")
    if args.seq:
        proof = json.loads(get(f"{base}/api/v1/proofs/inclusion?seq={args.seq}&tree_size={size}"))
        leaf = hashlib.sha256(b"\x00" + bytes.fromhex(proof["event_hash"])).digest()
        path = [bytes.fromhex(h) for h in proof["audit_path"]]
        if not verify_inclusion(args.seq - 1, size, leaf, path, root):
            print(f"FAIL: seq {args.seq} is not included in the checkpoint")
            return 1
        print(f"inclusion OK: seq {args.seq} (event hash {proof['event_hash']}) is in the tree of size {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
