"""The activation history and the choices made from it: the rollback target and what gc keeps.

``history.json`` is written after the ``current`` symlink is switched (the symlink is the truth), so the newest
entry may be missing after a crash between the two: :func:`record_missing` fills it in at the next switch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from edgekit.errors import EdgekitError
from edgekit.manifest import utc_now, write_json_atomic

RunId = Tuple[str, str]  # (onnx sha256, run key)


def read(path: Path) -> List[Dict[str, Any]]:
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
        return list(doc["activations"])
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise EdgekitError("%s is unreadable (%s): move it away; the current symlink still says what runs"
                           % (path, exc)) from exc


def append(path: Path, sha: str, key: str, action: str, reason: str = "", came_from: Optional[RunId] = None
           ) -> Dict[str, Any]:
    """One switch, newest last; ``from``: the run that was current before it ("sha/key"), or None. Entries written
    before ``from`` was recorded have none (read them with ``entry.get("from")``)."""
    entries = read(path)
    entry = {"sha256": sha, "key": key, "at": utc_now(), "action": action, "reason": reason or "",
             "from": "%s/%s" % came_from if came_from else None}
    write_json_atomic(path, {"activations": entries + [entry]})
    return entry


def record_missing(path: Path, current: Optional[RunId]) -> None:
    """A switch whose history line was lost (killed between the symlink and history.json) gets it now."""
    if current is None:
        return
    entries = read(path)
    if not entries or (entries[-1]["sha256"], entries[-1]["key"]) != current:
        append(path, current[0], current[1], "activate", "recorded later: the process that switched to it "
                                                          "stopped before writing history",
               (entries[-1]["sha256"], entries[-1]["key"]) if entries else None)


def rolled_back_from(entries: List[Dict[str, Any]]) -> Set[RunId]:
    """Runs whose last time as current ended in a rollback (a failed health check, an operator's undo): never
    an automatic rollback target again, until activated again (``rollback --to`` still reaches them)."""
    out: Set[RunId] = set()
    for before, entry in zip(entries, entries[1:]):
        run, left = (entry["sha256"], entry["key"]), (before["sha256"], before["key"])
        out.discard(run)
        if left != run:
            (out.add if entry["action"] == "rollback" else out.discard)(left)
    return out


def previous(entries: List[Dict[str, Any]], current: Optional[RunId], exists: Callable[[str, str], bool]
             ) -> Optional[Dict[str, Any]]:
    """The rollback target: the newest entry before current's last activation whose run still exists and was not
    rolled back from, else the newest such entry that is not current."""
    rejected = rolled_back_from(entries)

    def usable(entry: Dict[str, Any]) -> bool:
        run = (entry["sha256"], entry["key"])
        return run != current and run not in rejected and exists(entry["sha256"], entry["key"])

    last = None
    if current is not None:
        for i in range(len(entries) - 1, -1, -1):
            if (entries[i]["sha256"], entries[i]["key"]) == current:
                last = i
                break
    if last is not None:
        for entry in reversed(entries[:last]):
            if usable(entry):
                return entry
    for entry in reversed(entries):
        if usable(entry):
            return entry
    return None


def candidates(entries: List[Dict[str, Any]], current: Optional[RunId], exists: Callable[[str, str], bool]
               ) -> List[str]:
    """The models ``rollback --to`` can go back to: those of the history, but current's, with a run still in the
    store, newest first."""
    out: List[str] = []
    for entry in reversed(entries):
        sha = entry["sha256"]
        if sha not in out and (current is None or sha != current[0]) and exists(sha, entry["key"]):
            out.append(sha)
    return out


def newest_runs(entries: List[Dict[str, Any]], count: int, besides: Optional[RunId] = None) -> List[RunId]:
    """The ``count`` newest distinct runs activated (or rolled back to) other than ``besides``, newest first."""
    out: List[RunId] = []
    seen: Set[RunId] = {besides} if besides else set()
    for entry in reversed(entries if count > 0 else []):
        run = (entry["sha256"], entry["key"])
        if run not in seen:
            seen.add(run)
            out.append(run)
        if len(out) >= count:
            break
    return out
