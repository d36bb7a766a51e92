"""Questions asked of the store without changing it: which run a command means, and what a roll-out would change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from edgekit.errors import EdgekitError
from edgekit.manifest import sha256_file
from edgekit.store import history, integrity
from edgekit.store.keys import check_key

if TYPE_CHECKING:
    from edgekit.store.store import Store


def key_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """Build options as they go into the run key: a calibration folder by its content (names and sizes)."""
    out = dict(options)
    if out.get("calib"):
        folder = Path(out["calib"])
        if not folder.is_dir():
            raise EdgekitError("--calib %s: give a folder of calibration images" % folder)
        listing = sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
        out["calib"] = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return out


def pick_run(store: Store, ref: str, key: Optional[str] = None, backend: Optional[str] = None,
             precision: Optional[str] = None, dla_core: Optional[int] = None,
             build_options: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
    """The (sha, key) of a run that exists: by ``key``, by backend/precision/DLA (the key they make on this box),
    or the model's only run (``current``: the current run)."""
    sha = store.resolve(ref)
    by_options = backend is not None or precision is not None or dla_core is not None or bool(build_options)
    if key is not None:
        if by_options:
            raise EdgekitError("give --key or the backend/precision options, not both")
        check_key(key)
    elif by_options:
        key = store.key_for(sha, backend or "tensorrt", precision, dla_core, build_options=build_options)
    elif ref.strip().lower() == "current":
        key = store.current()["key"] if store.current() else None
    if key is not None:
        if (store.run_dir(sha, key) / "run.json").is_file():
            require_run(store, sha, key)  # a damaged run: says so
        elif not store.has_run(sha, key):
            have = ", ".join(r["key"] for r in store.runs(sha)) or "none"
            raise EdgekitError("model %s has no run %s on this box (its runs: %s): build it first with edgekit "
                               "models build %s" % (sha[:12], key, have, sha[:12]))
        return sha, key
    runs = store.runs(sha)
    if len(runs) == 1:
        return sha, runs[0]["key"]
    if not runs:
        raise EdgekitError("model %s has no run on this box yet: build one with edgekit models build %s"
                           % (sha[:12], sha[:12]))
    raise EdgekitError("model %s has %d runs (%s): pick one with --key or the precision options"
                       % (sha[:12], len(runs), ", ".join(r["key"] for r in runs)))


def plan(store: Store, ref: str, backend: str, precision: Optional[str] = None, dla_core: Optional[int] = None,
         device: Optional[Dict[str, Any]] = None, build_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """What ``add`` + ``build`` + ``activate`` would change, without changing it. ``ref``: an ONNX file (by its
    content, in the store or not), or a model already in the store (sha, prefix or current)."""
    if str(ref).lower().endswith(".onnx") or Path(str(ref)).is_file():
        if not Path(ref).is_file():
            raise EdgekitError("%s not found: give the ONNX to roll out or a model sha256" % ref)
        sha = sha256_file(ref)
    else:
        sha = store.resolve(ref)
    key = store.key_for(sha, backend, precision, dla_core, device, build_options)
    now = store.current()
    now_id = (now["sha256"], now["key"]) if now else None
    new = not (store.model_dir(sha) / "entry.json").is_file()
    add = new or integrity.model_problem(store, sha) is not None  # add repairs a damaged model.onnx
    build = new or not store.has_run(sha, key)
    switch = now_id != (sha, key)
    changes = [what for what, yes in (("add", add), ("build", build), ("switch", switch)) if yes]
    return {"sha256": sha, "key": key, "add": add, "build": build, "switch": switch, "changes": changes,
            "changed": bool(changes), "current": {"sha256": now_id[0], "key": now_id[1]} if now_id else None}


def require_run(store: Store, sha: str, key: str) -> None:
    """Run ``key`` of ``sha`` is built and intact at a glance, or one line: not built, or damaged (and why)."""
    if store.has_run(sha, key):
        return
    if (store.run_dir(sha, key) / "run.json").is_file():
        raise EdgekitError("run %s of model %s is damaged (%s): %s" % (key, sha[:12], integrity.problem_text(
            store, sha, key), integrity.repair_hint(store, sha, key)))
    raise EdgekitError("model %s has no run %s on this box: build it first (edgekit models build %s)"
                       % (sha[:12], key, sha[:12]))


def rollback_target(store: Store, to_sha: Optional[str]) -> Tuple[str, str]:
    """The (sha, key) ``rollback`` goes to: :meth:`Store.previous`, or the newest activation of model ``to_sha``
    whose run is still in the store."""
    if to_sha is None:
        target = store.previous()
        if target is None:
            shas = history.candidates(store.history(), store._current_id(), store.has_run)
            raise EdgekitError("nothing to roll back to: the history of %s has no other run still in the store that "
                               "was not rolled back from (runs rolled back from are skipped); go back to one by hand "
                               "with edgekit models rollback --to SHA (%s)" % (
                                   store.root, "models of the history still in the store: " + ", ".join(
                                       s[:12] for s in shas) if shas else "none of the history's other models is "
                                   "still in the store"))
        return target["sha256"], target["key"]
    sha = store.resolve(to_sha)
    entries = [e for e in reversed(store.history()) if e["sha256"] == sha]
    keys = [e["key"] for e in entries if store.has_run(sha, e["key"])]
    if entries and not keys:
        raise EdgekitError("model %s has none of the runs it was active with left intact in the store (removed by "
                           "gc, or damaged: edgekit models verify): build it again (edgekit models build %s)"
                           % (sha[:12], sha[:12]))
    if not keys:
        raise EdgekitError("model %s was never active on this box: activate it with edgekit models activate %s"
                           % (sha[:12], sha[:12]))
    return sha, keys[0]
