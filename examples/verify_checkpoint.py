#!/usr/bin/env python3
"""Checks govledger's signed checkpoints and inclusion proofs independently
of the server, with `govledger.verify` (clients/python: C2SP signed-note and
tlog-checkpoint, RFC 9162, and Ed25519 in pure Python).

    GOVLEDGER_TOKEN=... python3 examples/verify_checkpoint.py --url http://127.0.0.1:8080 [--key FILE] [--seq N]

Fetches the latest checkpoint, checks its signature with the verifier key
(from --key, or the server's /api/v1/checkpoint/key), and with --seq checks
that event N is included in the checkpointed tree and hashes to what is
proven (the proof needs a bearer token allowed to read that event, in
GOVLEDGER_TOKEN; the checkpoint and the key are public). Runs from a
checkout without installing the package.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python", "src"))

from govledger import Client, verify  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key")
    parser.add_argument("--seq", type=int)
    args = parser.parse_args()
    key = open(args.key, encoding="utf-8").read() if args.key else None
    client = Client(args.url, verifier_key=key)
    try:
        checkpoint = client.checkpoint()
    except verify.VerificationError as e:
        print(f"FAIL: checkpoint: {e}")
        return 1
    c = checkpoint.checkpoint
    print(f"checkpoint OK: origin {c.origin}, size {c.size}, root {c.root_hex}")
    if args.seq:
        try:
            client.prove_inclusion(args.seq, checkpoint)
        except verify.VerificationError as e:
            print(f"FAIL: seq {args.seq} is not included in the checkpoint: {e}")
            return 1
        print(f"inclusion OK: seq {args.seq} (event hash {client.event(args.seq)['hash']}) is in the tree of size {c.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
