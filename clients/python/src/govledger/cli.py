"""`govledger-py`: the gate and bundle verification for CI images that have
Python but not the govledger binary. Exit 0: allowed / intact; 1: denied /
failed; 2: the question could not be asked (usage, connection, API error)."""
import argparse
import json
import sys
from typing import List, Optional

from . import verify
from .client import Client
from .errors import GovledgerError


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="govledger-py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    gate = commands.add_parser("gate", help="ask whether a model version may be deployed (GOVLEDGER_URL, GOVLEDGER_TOKEN)")
    gate.add_argument("--model", required=True, help="model:NAME@VERSION")
    gate.add_argument("--environment", required=True, help="e.g. production")
    gate.add_argument("--url", help="default: GOVLEDGER_URL")
    bundle = commands.add_parser("verify-bundle", help="check an evidence bundle offline")
    bundle.add_argument("directory")
    bundle.add_argument("--key", help="a file with the verifier key to require (proves who signed)")
    vectors = commands.add_parser("verify-vectors", help="check the published event hash test vectors")
    vectors.add_argument("path")
    args = parser.parse_args(argv)

    if args.command == "gate":
        try:
            result = Client(url=args.url).gate(args.model, args.environment)
        except (GovledgerError, ValueError) as e:
            print(f"govledger-py: {e}", file=sys.stderr)
            return 2
        print(json.dumps(result.decision, indent=2, ensure_ascii=False))
        print(f"{'ALLOW' if result.allowed else 'DENY'}: {'; '.join(result.reasons)}", file=sys.stderr)
        return 0 if result.allowed else 1
    if args.command == "verify-bundle":
        try:
            key = None
            if args.key:
                with open(args.key, encoding="utf-8") as f:
                    key = verify.VerifierKey.parse(f.read())
            report = verify.verify_bundle(args.directory, key)
        except OSError as e:
            print(f"govledger-py: {e}", file=sys.stderr)
            return 2
        except verify.VerificationError as e:
            print(f"FAIL: {e}")
            return 1
        signer = "the pinned key" if report.key_pinned else "the bundle's own key (integrity only: pass --key to prove who signed)"
        print(f"OK: {report.events} events proven in the tree of size {report.tree_size} (root {report.root_hash}), signed by {signer} {report.key_id}")
        return 0
    try:
        count = verify.verify_vectors(args.path)
    except (OSError, ValueError, KeyError) as e:
        print(f"govledger-py: {e}", file=sys.stderr)
        return 2
    except verify.VerificationError as e:
        print(f"FAIL: {e}")
        return 1
    print(f"OK: {count} test vectors verified independently")
    return 0


if __name__ == "__main__":
    sys.exit(main())
