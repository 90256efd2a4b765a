"""Which works of the installed music21 corpus the classical catalogue renders: every work its collections
know (:mod:`.collections`), and :func:`select_works`, a deterministic, varied selection of them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import PurePosixPath

from audiorec_assets.datasets.classical.bundle import Entry, corpus_entries
from audiorec_assets.datasets.classical.collections import COLLECTIONS
from audiorec_assets.datasets.classical.works import WorkSpec, slug


def candidate_works(entries: Iterable[Entry] | None = None) -> dict[str, list[WorkSpec]]:
    """Every work the collections know, by collection key, with unique track ids (deterministic)."""
    entries = list(corpus_entries() if entries is None else entries)
    out: dict[str, list[WorkSpec]] = {}
    used: set[str] = set()
    for collection in COLLECTIONS:
        mine = [e for e in entries if collection.match(e)]
        specs = []
        for fields in sorted(collection.build(mine), key=lambda f: (f["path"], f.get("number") or 0)):
            tail = _tail(fields["path"], fields.get("number"))
            base = slug(f"{collection.key}-{tail}" if collection.id_prefix else
                        f"{PurePosixPath(fields['path']).parts[0]}-{tail}")
            track_id, n = base, 2
            while track_id in used:
                track_id, n = f"{base[:60]}-{n}", n + 1
            used.add(track_id)
            group = fields["composer"] if fields.get("composer") not in ("", "Traditional", None) else collection.key
            specs.append(WorkSpec(track_id=track_id, collection=collection.name, group=group, **fields))
        out[collection.key] = specs
    return out


def _tail(path: str, number: int | None) -> str:
    """The part of a corpus path that names the work within its collection folder."""
    parts = PurePosixPath(path).with_suffix("").parts[1:]
    text = "-".join(parts) if parts else PurePosixPath(path).stem
    return f"{text}-{number:04d}" if number is not None else text


def select_works(n_works: int = 300, max_per_composer: int = 30,
                 candidates: dict[str, list[WorkSpec]] | None = None) -> list[WorkSpec]:
    """A deterministic, varied selection of ``n_works`` tracks (fewer if the corpus runs out), in selection order:
    round-robin over the collections (whole works at a time, movements in order), each collection's works in a
    fixed pseudo-random order (a hash of the work id), at most ``max_per_composer`` tracks per composer (a folk
    collection: its ``cap_share`` of that), so none dominates; a larger ``n_works`` keeps every work a smaller one
    picked."""
    if n_works < 1 or max_per_composer < 1:
        raise ValueError("n_works and max_per_composer must be positive")
    candidates = candidate_works() if candidates is None else candidates
    queues: dict[str, list[list[WorkSpec]]] = {}
    for key, specs in candidates.items():
        by_work: dict[str, list[WorkSpec]] = defaultdict(list)
        for spec in specs:
            by_work[spec.work or spec.track_id].append(spec)
        ordered = sorted(by_work.items(), key=lambda kv: hashlib.sha1(kv[0].encode("utf-8")).hexdigest())
        queues[key] = [sorted(ws, key=lambda s: (s.movement if s.movement is not None else 0, s.track_id))
                       for _, ws in ordered]
    caps: dict[str, int] = {}
    for collection in COLLECTIONS:
        for spec in candidates.get(collection.key, []):
            cap = max(1, int(max_per_composer * collection.cap_share))
            caps[spec.group] = min(caps.get(spec.group, cap), cap)
    taken: list[WorkSpec] = []
    per_group: dict[str, int] = defaultdict(int)
    order = [c.key for c in COLLECTIONS] + [k for k in candidates if k not in {c.key for c in COLLECTIONS}]
    active = [key for key in order if queues.get(key)]
    while active and len(taken) < n_works:
        still = []
        for key in active:
            if len(taken) >= n_works:
                break
            queue = queues[key]
            while queue:
                room: dict[str, int] = {}
                for spec in queue.pop(0):  # the composer's cap, movement by movement
                    if per_group[spec.group] + room.get(spec.group, 0) < caps.get(spec.group, max_per_composer):
                        room[spec.group] = room.get(spec.group, 0) + 1
                        taken.append(spec)
                        if len(taken) >= n_works:
                            break
                for group, count in room.items():
                    per_group[group] += count
                if room:
                    break
            if queue:
                still.append(key)
        active = still
    return taken
