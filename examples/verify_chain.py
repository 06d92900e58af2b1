#!/usr/bin/env python3
"""Checks govledger's hash chain independently of the server, with
`govledger.verify` (clients/python: standard library only, written from
docs/LEDGER_FORMAT.md alone).

    python3 examples/verify_chain.py --vectors docs/ledger-test-vectors.json
    GOVLEDGER_TOKEN=... python3 examples/verify_chain.py --url http://127.0.0.1:8080

With --vectors it checks the published test vectors; with --url it pages
through GET /api/v1/events (with the bearer token in GOVLEDGER_TOKEN, which
must be allowed to read every project) and recomputes every hash and link.
Runs from a checkout without installing the package.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python", "src"))

from govledger import Client, verify  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--vectors")
    group.add_argument("--url")
    args = parser.parse_args()
    try:
        if args.vectors:
            count = verify.verify_vectors(args.vectors)
        else:
            count = verify.verify_chain(Client(args.url).events())
    except verify.VerificationError as e:
        print(f"FAIL: {e}")
        return 1
    print(f"OK: {count} events verified independently")
    return 0


if __name__ == "__main__":
    sys.exit(main())
