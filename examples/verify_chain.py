#!/usr/bin/env python3
"""An independent verifier for govledger's hash chain, written from
docs/LEDGER_FORMAT.md alone (standard library only).

    python3 examples/verify_chain.py --vectors docs/ledger-test-vectors.json
    GOVLEDGER_TOKEN=... python3 examples/verify_chain.py --url http://127.0.0.1:8080

With --vectors it checks the published test vectors; with --url it pages
through GET /api/v1/events (with the bearer token in GOVLEDGER_TOKEN, which
must be allowed to read every project) and recomputes every hash and link.
"""
import os
import argparse
import hashlib
import json
import struct
import sys
import urllib.request

DOMAIN = b"govledger.event.v1\x00"


def put_str(out, s):
    b = s.encode("utf-8")
    out += struct.pack(">I", len(b)) + b


def put_opt(out, s):
    if s is None:
        out += b"\x00"
    else:
        out += b"\x01"
        put_str(out, s)


def put_list(out, items):
    out += struct.pack(">I", len(items))
    for item in items:
        put_str(out, item)


def canonical_attributes(value):
    # Sorted keys, no whitespace, UTF-8 as is: the server's canonical form for
    # strings and integers. The API sends the stored bytes verbatim, so a
    # client that keeps them (see --url) never needs to re-serialise floats.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode(e):
    out = bytearray(DOMAIN)
    out += struct.pack(">Q", e["seq"])
    out += bytes.fromhex(e["prev_hash"])
    for field in ("id", "recorded_at", "actor", "kind", "subject"):
        put_str(out, e[field])
    put_opt(out, e["project"])
    put_list(out, e["inputs"])
    put_list(out, e["outputs"])
    put_str(out, e["attributes_canonical"])
    put_opt(out, e["occurred_at"])
    put_opt(out, e["idempotency_key"])
    return bytes(out)


def check_chain(events):
    prev = "0" * 64
    for expected_seq, e in enumerate(events, start=1):
        if e["seq"] != expected_seq:
            return f"gap: expected seq {expected_seq}, found {e['seq']}"
        if e["prev_hash"] != prev:
            return f"broken link at seq {e['seq']}"
        digest = hashlib.sha256(encode(e)).hexdigest()
        if digest != e["hash"]:
            return f"hash mismatch at seq {e['seq']}: computed {digest}, stored {e['hash']}"
        prev = e["hash"]
    return None


def raw_attributes(body):
    """The verbatim `attributes` text of each event in a response body."""
    decoder = json.JSONDecoder()
    texts, i = [], 0
    key = '"attributes":'
    while True:
        i = body.find(key, i)
        if i < 0:
            return texts
        start = i + len(key)
        _, end = decoder.raw_decode(body, start)
        texts.append(body[start:end])
        i = end


def fetch_events(url):
    events, after = [], 0
    while True:
        request = urllib.request.Request(f"{url}/api/v1/events?limit=1000&after_seq={after}")
        if os.environ.get("GOVLEDGER_TOKEN"):
            request.add_header("Authorization", f"Bearer {os.environ['GOVLEDGER_TOKEN']}")
        with urllib.request.urlopen(request) as r:
            body = r.read().decode("utf-8")
        page = json.loads(body)
        for e, raw in zip(page["events"], raw_attributes(body)):
            e["attributes_canonical"] = raw
            events.append(e)
        if page["next_after_seq"] is None:
            return events
        after = page["next_after_seq"]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--vectors")
    group.add_argument("--url")
    args = parser.parse_args()
    if args.vectors:
        with open(args.vectors, encoding="utf-8") as f:
            vectors = json.load(f)["vectors"]
        for v in vectors:
            e = dict(v["event"], hash=v["hash"])
            if encode(e).hex() != v["encoding_hex"]:
                print(f"FAIL: encoding of vector seq {e['seq']} differs")
                return 1
            assert canonical_attributes(json.loads(e["attributes_canonical"])) == e["attributes_canonical"]
        failure = check_chain([dict(v["event"], hash=v["hash"]) for v in vectors])
        count = len(vectors)
    else:
        events = fetch_events(args.url.rstrip("/"))
        failure = check_chain(events)
        count = len(events)
    if failure:
        print(f"FAIL: {failure}")
        return 1
    print(f"OK: {count} events verified independently")
    return 0


if __name__ == "__main__":
    sys.exit(main())
