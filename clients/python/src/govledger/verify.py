"""An independent verifier for govledger's record, written from the
specifications alone: docs/LEDGER_FORMAT.md (the canonical event encoding and
evidence bundles), C2SP signed-note and tlog-checkpoint (checkpoints), and
RFC 9162 (inclusion and consistency proofs). It shares no code with the server,
so a bug in one is not silently repeated in the other.

Every check raises :class:`VerificationError` naming what failed; a function
that returns has verified what it says.
"""
import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from . import _ed25519

DOMAIN = b"govledger.event.v1\x00"
ZERO_HASH = "0" * 64
BUNDLE_FORMAT = "govledger-bundle/v1"
_EVENT_FIELDS = (
    "seq",
    "id",
    "recorded_at",
    "actor",
    "kind",
    "subject",
    "project",
    "inputs",
    "outputs",
    "attributes",
    "occurred_at",
    "idempotency_key",
    "prev_hash",
    "hash",
)


class VerificationError(Exception):
    """A check failed; `item` names the file or value that failed it."""

    def __init__(self, item: str, reason: str) -> None:
        super().__init__(f"{item}: {reason}")
        self.item = item
        self.reason = reason


# --- events -----------------------------------------------------------------


def _put_str(out: bytearray, text: str) -> None:
    data = text.encode("utf-8")
    out += struct.pack(">I", len(data)) + data


def _put_opt(out: bytearray, text: Optional[str]) -> None:
    if text is None:
        out += b"\x00"
    else:
        out += b"\x01"
        _put_str(out, text)


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The canonical encoding of an event (docs/LEDGER_FORMAT.md).

    `event` holds the fields as the API serves them, plus `attributes_canonical`:
    the attributes' JSON text exactly as served (see :func:`raw_attributes`).
    Re-serialising parsed attributes would change floats, so the verbatim text
    is what gets hashed.
    """
    out = bytearray(DOMAIN)
    out += struct.pack(">Q", event["seq"])
    out += _hash_bytes("prev_hash", event["prev_hash"])
    for field in ("id", "recorded_at", "actor", "kind", "subject"):
        _put_str(out, event[field])
    _put_opt(out, event["project"])
    for field in ("inputs", "outputs"):
        items = event[field]
        out += struct.pack(">I", len(items))
        for item in items:
            _put_str(out, item)
    _put_str(out, event["attributes_canonical"])
    _put_opt(out, event["occurred_at"])
    _put_opt(out, event["idempotency_key"])
    return bytes(out)


def event_hash(event: Mapping[str, Any]) -> str:
    """The event's hash, lower-case hex, recomputed from its fields."""
    return hashlib.sha256(encode_event(event)).hexdigest()


def verify_event(event: Mapping[str, Any]) -> None:
    """Check that an event's fields hash to its `hash`."""
    computed = event_hash(event)
    if computed != event["hash"]:
        raise VerificationError(f"seq {event['seq']}", f"the fields hash to {computed}, not to the stored {event['hash']}")


def raw_attributes(body: str) -> List[str]:
    """The verbatim `attributes` text of each event in a JSON body, in order.

    A JSON string cannot hold an unescaped `"` followed by `:`, so the text
    `"attributes":` only occurs as a key; the decoder then skips the whole value,
    so nested `attributes` keys are not mistaken for the next event's.
    """
    decoder = json.JSONDecoder()
    texts: List[str] = []
    i, key = 0, '"attributes":'
    while True:
        i = body.find(key, i)
        if i < 0:
            return texts
        start = i + len(key)
        _, end = decoder.raw_decode(body, start)
        texts.append(body[start:end])
        i = end


def verify_chain(events: Iterable[Mapping[str, Any]], start_prev_hash: str = ZERO_HASH) -> int:
    """Check consecutive events from the first: no gap, every link, every hash.

    Returns the number of events checked.
    """
    prev, count, expected = start_prev_hash, 0, None
    for event in events:
        if expected is not None and event["seq"] != expected:
            raise VerificationError(f"seq {event['seq']}", f"gap: expected seq {expected}")
        if expected is None and start_prev_hash == ZERO_HASH and event["seq"] != 1:
            raise VerificationError(f"seq {event['seq']}", "a chain from genesis starts at seq 1")
        if event["prev_hash"] != prev:
            raise VerificationError(f"seq {event['seq']}", "prev_hash does not link to the previous event")
        verify_event(event)
        prev, expected, count = event["hash"], event["seq"] + 1, count + 1
    return count


def verify_vectors(path: str) -> int:
    """Check the published test vectors (docs/ledger-test-vectors.json)."""
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    events = []
    for vector in vectors:
        event = dict(vector["event"], hash=vector["hash"])
        if encode_event(event).hex() != vector["encoding_hex"]:
            raise VerificationError(f"vector seq {event['seq']}", "the canonical encoding differs")
        events.append(event)
    return verify_chain(events)


# --- checkpoints (C2SP signed note, tlog-checkpoint) ------------------------


@dataclass(frozen=True)
class VerifierKey:
    """A signed-note verifier key: `name+keyid+base64(0x01 || ed25519 key)`."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> "VerifierKey":
        try:
            name, key_id_hex, key_b64 = text.strip().split("+", 2)
            key = base64.b64decode(key_b64, validate=True)
        except ValueError as e:
            raise VerificationError("key", f"not a verifier key: {e}") from None
        if len(key) != 33 or key[0] != 0x01:
            raise VerificationError("key", "only Ed25519 verifier keys (type 0x01) are supported")
        key_id = hashlib.sha256(name.encode("utf-8") + b"\n" + key).digest()[:4]
        if key_id.hex() != key_id_hex:
            raise VerificationError("key", "the key id does not match the key")
        return cls(name, key_id, key[1:])

    def vkey(self) -> str:
        encoded = base64.b64encode(b"\x01" + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: Tuple[str, ...] = ()

    @property
    def root_hex(self) -> str:
        return self.root_hash.hex()


def verify_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """Check a signed checkpoint's signature by `key` and parse its body."""
    if "\n\n" not in note:
        raise VerificationError("checkpoint", "a signed note has a blank line before its signatures")
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    found = False
    for line in signatures.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise VerificationError("checkpoint", "signature lines start with an em dash and a space")
        try:
            signer, blob_b64 = line[2:].split(" ", 1)
            blob = base64.b64decode(blob_b64, validate=True)
        except ValueError:
            raise VerificationError("checkpoint", f"unreadable signature line {line!r}") from None
        if signer == key.name and blob[:4] == key.key_id:
            if not _ed25519.verify(key.public_key, body.encode("utf-8"), blob[4:]):
                raise VerificationError("checkpoint", f"the signature by {key.name} does not verify")
            found = True
    if not found:
        raise VerificationError("checkpoint", f"no signature by {key.name} (key id {key.key_id.hex()})")
    lines = body.rstrip("\n").split("\n")
    if len(lines) < 3:
        raise VerificationError("checkpoint", "the body needs an origin, a size and a root hash")
    origin, size_text, root_b64 = lines[:3]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise VerificationError("checkpoint", f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except ValueError:
        raise VerificationError("checkpoint", "the root hash is not base64") from None
    if len(root) != 32:
        raise VerificationError("checkpoint", "the root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(lines[3:]))


# --- Merkle proofs (RFC 9162) -----------------------------------------------


def leaf_hash(event_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + _hash_bytes("event hash", event_hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf_index: int, tree_size: int, event_hash_hex: str, audit_path: Sequence[str], root: bytes) -> None:
    """RFC 9162 section 2.1.3.2: the event is leaf `leaf_index` of the tree."""
    if leaf_index >= tree_size:
        raise VerificationError(f"leaf {leaf_index}", f"is outside a tree of size {tree_size}")
    fn, sn, r = leaf_index, tree_size - 1, leaf_hash(event_hash_hex)
    for p in (_hash_bytes("audit path", h) for h in audit_path):
        if sn == 0:
            raise VerificationError(f"leaf {leaf_index}", "the audit path is too long")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise VerificationError(f"leaf {leaf_index}", f"is not included in the tree of size {tree_size} with that root")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[str]) -> None:
    """RFC 9162 section 2.1.4.2: the tree of size `first` is a prefix of `second`."""
    item = f"consistency {first}->{second}"
    path = [_hash_bytes("consistency proof", h) for h in proof]
    if first > second:
        raise VerificationError(item, "the first tree is larger than the second")
    if first == second:
        if path or first_root != second_root:
            raise VerificationError(item, "equal sizes need equal roots and an empty proof")
        return
    if first == 0:
        if path:
            raise VerificationError(item, "a proof from the empty tree is empty")
        return
    if not path:
        raise VerificationError(item, "the proof is empty")
    if first & (first - 1) == 0:
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(item, "the proof is too long")
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise VerificationError(item, "the proof does not connect the two roots")


# --- evidence bundles --------------------------------------------------------


@dataclass(frozen=True)
class BundleReport:
    events: int
    tree_size: int
    root_hash: str
    key_id: str
    key_pinned: bool


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _read(directory: str, name: str) -> str:
    try:
        with open(os.path.join(directory, name), encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise VerificationError(name, f"cannot read: {e}") from None


def _parse_ordered(name: str, text: str, fields: Sequence[str]) -> Dict[str, Any]:
    """Parse a bundle file and require exactly `fields`, in that order."""
    try:
        pairs = json.loads(text, object_pairs_hook=lambda p: p)
    except ValueError as e:
        raise VerificationError(name, f"not JSON: {e}") from None
    if not isinstance(pairs, list) or [k for k, _ in pairs] != list(fields):
        raise VerificationError(name, f"must hold exactly the fields {', '.join(fields)}, in that order")
    return dict(pairs)


def _canonical_text(value: Mapping[str, Any], fields: Sequence[str], raw: Optional[Mapping[str, str]] = None) -> str:
    parts = []
    for field in fields:
        text = raw[field] if raw and field in raw else _compact(value[field])
        parts.append(f"{_compact(field)}:{text}")
    return "{" + ",".join(parts) + "}\n"


def _require_canonical(name: str, text: str, expected: str) -> None:
    if text != expected:
        raise VerificationError(name, "not in canonical form (the file was edited)")


def _hash_bytes(item: str, text: Any) -> bytes:
    if not isinstance(text, str) or len(text) != 64 or text.lower() != text:
        raise VerificationError(item, "is not 32 bytes of lower-case hex")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise VerificationError(item, "is not 32 bytes of lower-case hex") from None


def _plain_pairs(pairs: Any) -> Any:
    # object_pairs_hook left lists of pairs everywhere; turn nested ones back.
    if isinstance(pairs, list) and all(isinstance(p, tuple) and len(p) == 2 for p in pairs) and pairs:
        return {k: _plain_pairs(v) for k, v in pairs}
    if isinstance(pairs, list):
        return [_plain_pairs(v) for v in pairs]
    return pairs


def verify_bundle(directory: str, key: Optional[VerifierKey] = None) -> BundleReport:
    """Check an evidence bundle (docs/LEDGER_FORMAT.md) without the server.

    With `key`, the checkpoint must be signed by it (who signed is then
    proven); without, by the bundle's own key.pub (integrity only).
    """
    manifest_fields = ("format", "origin", "tree_size", "root_hash", "events")
    manifest_text = _read(directory, "bundle.json")
    manifest = _parse_ordered("bundle.json", manifest_text, manifest_fields)
    manifest["events"] = _plain_pairs(manifest["events"])
    entries = manifest["events"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) and list(e) == ["seq", "hash"] for e in entries):
        raise VerificationError("bundle.json", "events must be a list of {seq, hash}")
    _require_canonical("bundle.json", manifest_text, _canonical_text(manifest, manifest_fields))
    if manifest["format"] != BUNDLE_FORMAT:
        raise VerificationError("bundle.json", f"unknown format {manifest['format']!r}")

    key_text = _read(directory, "key.pub")
    bundled = VerifierKey.parse(key_text)
    _require_canonical("key.pub", key_text, bundled.vkey() + "\n")
    if key is not None and key != bundled:
        raise VerificationError("key.pub", "is not the key given to check against")
    checkpoint = verify_checkpoint(_read(directory, "checkpoint.txt"), key or bundled)
    if (checkpoint.origin, checkpoint.size, checkpoint.root_hex) != (
        manifest["origin"],
        manifest["tree_size"],
        manifest["root_hash"],
    ):
        raise VerificationError("bundle.json", "origin, tree_size or root_hash differ from the signed checkpoint")

    expected_files: Set[str] = set()
    previous: Optional[Dict[str, Any]] = None
    for entry in entries:
        name = f"{entry['seq']:012d}.json"
        event_item, proof_item = f"events/{name}", f"proofs/{name}"
        expected_files.update((event_item, proof_item))
        if previous is not None and entry["seq"] <= previous["seq"]:
            raise VerificationError("bundle.json", "events are not in increasing seq order")
        text = _read(directory, event_item)
        event = _parse_ordered(event_item, text, _EVENT_FIELDS)
        raws = raw_attributes(text)
        if not raws:
            raise VerificationError(event_item, "has no attributes")
        event = {k: (_plain_pairs(v) if k != "attributes" else None) for k, v in event.items()}
        event["attributes_canonical"] = raws[0]
        _require_canonical(event_item, text, _canonical_text(event, _EVENT_FIELDS, {"attributes": raws[0]}))
        if event["seq"] != entry["seq"]:
            raise VerificationError(event_item, f"holds seq {event['seq']} but is listed as seq {entry['seq']}")
        _hash_bytes(f"{event_item} hash", event["hash"])
        if event_hash(event) != event["hash"]:
            raise VerificationError(event_item, "the event's contents do not hash to its `hash`: it was altered")
        if event["hash"] != entry["hash"]:
            raise VerificationError("bundle.json", f"the hash listed for seq {entry['seq']} differs from the event's")
        if previous is not None and previous["seq"] + 1 == event["seq"] and event["prev_hash"] != previous["hash"]:
            raise VerificationError(event_item, "prev_hash does not link to the previous event")
        proof_fields = ("seq", "leaf_index", "tree_size", "audit_path")
        proof_text = _read(directory, proof_item)
        proof = _parse_ordered(proof_item, proof_text, proof_fields)
        _require_canonical(proof_item, proof_text, _canonical_text(proof, proof_fields))
        if (proof["seq"], proof["leaf_index"], proof["tree_size"]) != (event["seq"], event["seq"] - 1, checkpoint.size):
            raise VerificationError(proof_item, "names another event or tree than the checkpoint's")
        try:
            verify_inclusion(proof["leaf_index"], proof["tree_size"], event["hash"], proof["audit_path"], checkpoint.root_hash)
        except VerificationError as e:
            raise VerificationError(proof_item, e.reason) from None
        previous = event

    for sub in ("events", "proofs"):
        folder = os.path.join(directory, sub)
        for file_name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if f"{sub}/{file_name}" not in expected_files:
                raise VerificationError(f"{sub}/{file_name}", "is not listed in bundle.json")
    for file_name in sorted(os.listdir(directory)):
        if file_name not in ("bundle.json", "checkpoint.txt", "key.pub", "events", "proofs"):
            raise VerificationError(file_name, "is not part of a bundle")
    return BundleReport(len(entries), checkpoint.size, checkpoint.root_hex, (key or bundled).key_id.hex(), key is not None)
