"""The audit trail of releases: every move of ``champion``, ``canary`` and ``previous`` and every approval
decision, append-only, in the registry itself. MLflow keeps no history of aliases (mlflow issue 2169).

Storage: one registered-model tag per entry, ``mlops.audit.<seq:08d>.<id>`` holding the entry as compact JSON.
Tags live in MLflow's backend store, so the trail survives restarts, works the same on a remote tracking server
(plain REST, the same credentials and permissions as the alias moves) and travels with the model; an artifact
would need a run to hang off and a read-modify-write of one file, which two writers can clobber.

Appending never loses an entry: the key carries a random id, so no write can overwrite another writer's entry.
The sequence number is claimed as "one past the highest" and then checked: a writer that finds a rival at its
number after writing rewrites its entry at a fresh number (the new key first, the old one deleted after), so
the numbers end up unique even between machines whose file locks do not see each other. Of two writers at one
number the later to check always sees the other, so at most a gap is left, never a duplicate or a loss.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient

from mlops_assets.core.contracts import AUDIT_TAG_PREFIX
from mlops_assets.core.records import AuditEntry

# MLflow 3.x accepts 100,000 characters in a registry tag value; servers before 2.x-late accept 5,000. Entries
# stay under the smaller limit so the trail works against an older remote server too.
MAX_VALUE_CHARS = 5000
MAX_WHY_VALUE_CHARS = 400  # one piece of evidence; longer ones are cut (marked with "...") to fit
_KEY = re.compile(rf"^{re.escape(AUDIT_TAG_PREFIX)}(\d{{8}})\.([0-9a-f]{{12}})$")
_ATTEMPTS = 40


def new_entry(
    *,
    action: str,
    alias: str | None,
    from_version: str | None,
    to_version: str | None,
    who: str,
    why: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """An entry stamped now (UTC) with a fresh id; ``seq`` is assigned when it is appended."""
    return {
        "seq": 0,
        "id": uuid.uuid4().hex[:12],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "who": who,
        "action": action,
        "alias": alias,
        "from_version": None if from_version is None else str(from_version),
        "to_version": None if to_version is None else str(to_version),
        "why": dict(why or {}),
    }


def tag_key(seq: int, entry_id: str) -> str:
    return f"{AUDIT_TAG_PREFIX}{seq:08d}.{entry_id}"


def parse_key(key: str) -> tuple[int, str] | None:
    """(seq, id) of an audit tag key; None for any other tag."""
    match = _KEY.match(key)
    return (int(match.group(1)), match.group(2)) if match else None


def encode(entry: AuditEntry) -> str:
    """The tag value: the entry without ``seq`` (the key holds it), compact JSON under MAX_VALUE_CHARS."""
    body = {k: v for k, v in entry.items() if k != "seq"}
    value = json.dumps(body, sort_keys=True, separators=(",", ":"))
    if len(value) > MAX_VALUE_CHARS:
        body["why"] = {k: _clip(v) for k, v in entry["why"].items()}
        value = json.dumps(body, sort_keys=True, separators=(",", ":"))
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(
            f"audit entry for {entry['action']} is {len(value)} characters even with its evidence "
            f"cut to {MAX_WHY_VALUE_CHARS} each; the limit is {MAX_VALUE_CHARS}: pass fewer 'why' items"
        )
    return value


def _clip(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_WHY_VALUE_CHARS else text[: MAX_WHY_VALUE_CHARS - 3] + "..."


def decode(key: str, value: str) -> AuditEntry:
    parsed = parse_key(key)
    if parsed is None:
        raise ValueError(f"{key!r} is not an audit tag (expected {AUDIT_TAG_PREFIX}<8 digits>.<12 hex>)")
    body = json.loads(value)
    return {
        "seq": parsed[0],
        "id": body["id"],
        "at": body["at"],
        "who": body["who"],
        "action": body["action"],
        "alias": body.get("alias"),
        "from_version": body.get("from_version"),
        "to_version": body.get("to_version"),
        "why": body.get("why") or {},
    }


def history(tags: Mapping[str, str]) -> list[AuditEntry]:
    """The trail in a registered model's tags, oldest first. An entry caught between its two keys while it
    moves to a fresh number is listed once, at its first number."""
    entries = sorted((decode(k, v) for k, v in tags.items() if parse_key(k)), key=lambda e: (e["seq"], e["id"]))
    seen: set[str] = set()
    return [e for e in entries if not (e["id"] in seen or seen.add(e["id"]))]


def next_seq(tags: Mapping[str, str]) -> int:
    return 1 + max((p[0] for p in map(parse_key, tags) if p), default=0)


def append(client: MlflowClient, model_name: str, entry: AuditEntry) -> AuditEntry:
    """Append ``entry`` to the model's trail with a unique sequence number; returns it numbered. Raises when
    the registry refuses the write (the caller's move then fails too: a release is never unrecorded)."""
    held: str | None = None
    for _ in range(_ATTEMPTS):
        seq = next_seq(client.get_registered_model(model_name).tags)
        key = tag_key(seq, entry["id"])
        client.set_registered_model_tag(model_name, key, encode(entry))
        if held is not None:
            client.delete_registered_model_tag(model_name, held)  # the new key is written: nothing is lost
        held = key
        tags = client.get_registered_model(model_name).tags
        if key not in tags:
            raise RuntimeError(f"audit entry {key} for model {model_name!r} vanished right after it was written")
        if not any(p and p[0] == seq and p[1] != entry["id"] for p in map(parse_key, tags)):
            return {**entry, "seq": seq}
        time.sleep(random.uniform(0.005, 0.05))  # a rival claimed the same number: back off, take a fresh one
    raise RuntimeError(
        f"could not claim a unique audit sequence number for model {model_name!r} in {_ATTEMPTS} "
        f"attempts; the entry is kept as {held}"
    )


def describe_why(why: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in why.items()) or "-"


HEADER = f"{'seq':>4}  {'when (UTC)':<25} {'who':<14} {'action':<18} {'move':<26} why"


def format_line(entry: AuditEntry) -> str:
    """One line of ``mlops registry history``: seq, when, who, action, alias from -> to, why."""
    move = (
        f"{entry['alias']} v{entry['from_version'] or '-'} -> v{entry['to_version'] or '-'}"
        if entry["alias"]
        else f"v{entry['to_version'] or entry['from_version'] or '-'}"
    )
    return (
        f"{entry['seq']:>4}  {entry['at']:<25} {entry['who']:<14} {entry['action']:<18} {move:<26} "
        f"{describe_why(entry['why'])}"
    )
