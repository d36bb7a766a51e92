"""Whether what the store holds is what its records say: a cheap check (the file is there, at its size) before a
run is used or a build is skipped, and ``edgekit models verify``, which re-hashes every file.

A model's record is its entry.json (the folder name is the ONNX's sha256, ``size`` its size); a run's is its
run.json (``model``: the file it runs, ``model_sha256``, ``model_size`` for runs built since it was recorded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from edgekit.errors import EdgekitError
from edgekit.manifest import sha256_file
from edgekit.store.keys import SHA_RE

if TYPE_CHECKING:
    from edgekit.store.store import Store

GATES_FILE = "gates.json"  # edgekit models gate's record, in the run folder


class StoreDamaged(EdgekitError):
    """``edgekit models verify`` found a problem: a failed check, exit code 1 (2 stays a bad command line)."""

    exit_code = 1


def model_problem(store: Store, sha: str, full: bool = False) -> Optional[str]:
    """What is wrong with model ``sha``'s model.onnx (missing, another size; ``full``: another sha256), or None."""
    path = store.model_dir(sha) / "model.onnx"
    if not path.is_file():
        return "model.onnx is missing"
    size, want = path.stat().st_size, store.entry(sha).get("size")
    if want is not None and size != want:
        return "model.onnx is %d bytes, entry.json says %d" % (size, want)
    if full:
        got = sha256_file(path)
        if got != sha:
            return "model.onnx has sha256 %s, not %s" % (got[:12], sha[:12])
    return None


def run_problem(store: Store, sha: str, key: str, doc: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """What is wrong with run ``key`` of model ``sha`` at a glance (no run.json; its model file missing, empty or
    of another size than recorded), or None. Its content is :func:`verify`'s."""
    folder = store.run_dir(sha, key)
    if not (folder / "run.json").is_file():
        return "its folder is gone" if not folder.is_dir() else "no run.json"
    doc = doc if doc is not None else store.run(sha, key)
    path = folder / str(doc.get("model"))
    if not path.is_file():  # a link to a missing model.onnx too
        return "%s is missing" % doc.get("model")
    size = path.stat().st_size
    want = doc.get("model_size")
    if want is None and doc.get("model_sha256") == sha:  # an ONNX Runtime run: the model's own ONNX
        want = store.entry(sha).get("size") if (store.model_dir(sha) / "entry.json").is_file() else None
    if want is not None and size != want:
        return "%s is %d bytes, run.json says %d" % (doc.get("model"), size, want)
    if size == 0:
        return "%s is empty" % doc.get("model")
    return None


def problem_text(store: Store, sha: str, key: str) -> str:
    """:func:`run_problem` as words, an unreadable run.json included."""
    try:
        return run_problem(store, sha, key) or "intact"
    except EdgekitError as exc:
        return str(exc)


def repair_hint(store: Store, sha: str, key: str) -> str:
    """What repairs a damaged run: adding its ONNX again when the run is that ONNX and it is damaged, else a build."""
    try:
        doc = store.run(sha, key)
    except EdgekitError:
        doc = {}
    if doc.get("backend") == "onnxruntime" and model_problem(store, sha):
        return "add its ONNX again to repair it: edgekit models add MODEL.onnx"
    return "build it again: %s" % rebuild_command(sha, doc)


def rebuild_command(sha: str, doc: Dict[str, Any]) -> str:
    if doc.get("backend") == "onnxruntime":
        return "edgekit models build %s --backend onnxruntime" % sha[:12]
    dla = "" if doc.get("dla_core") is None else " --dla %s" % doc["dla_core"]
    return "edgekit models build %s --%s%s" % (sha[:12], doc.get("precision") or "fp16", dla)


def failed_gate(folder: Path) -> Optional[str]:
    """The gate a run failed per its gates.json (``edgekit models gate``), or None (passed, or never gated)."""
    try:
        doc = json.loads((folder / GATES_FILE).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(doc, dict) and doc.get("passed") is False:
        return "%s gate" % doc["failed"] if doc.get("failed") else "gates"
    return None


def warn_failed_gate(store: Store, sha: str, key: str, warn: Callable[[str], None]) -> None:
    """A run made current although its gates.json says it failed: one warning line naming the gate."""
    failed = failed_gate(store.run_dir(sha, key))
    if failed:
        warn("%s/%s failed its %s (edgekit models gate, %s): made current as asked" % (
            sha[:12], key, failed, store.run_dir(sha, key) / GATES_FILE))


def verify(store: Store) -> Dict[str, Any]:
    """Re-hash every stored ONNX and every run's model file against entry.json / run.json. {models, runs,
    problems: [{sha256, key (None: the model), path, problem, fix}], intact}."""
    problems: List[Dict[str, Any]] = []
    hashes: Dict[str, str] = {}
    models = runs = 0

    def problem(sha: str, key: Optional[str], path: Path, text: str, fix: str) -> None:
        problems.append({"sha256": sha, "key": key, "path": str(path), "problem": text, "fix": fix})

    for folder in sorted(store.models.iterdir()) if store.models.is_dir() else []:
        if not SHA_RE.match(folder.name) or not (folder / "entry.json").is_file():
            continue  # a leftover of an interrupted add: never store content
        sha, models = folder.name, models + 1
        onnx = folder / "model.onnx"
        try:
            onnx_text = _hashed_problem(store, sha, hashes)
        except EdgekitError as exc:
            onnx_text = str(exc)
        if onnx_text:
            problem(sha, None, onnx, onnx_text, "add its ONNX again: edgekit models add MODEL.onnx (copied again)")
        for run_dir in sorted((folder / "runs").iterdir()) if (folder / "runs").is_dir() else []:
            if run_dir.name.startswith(".") or not (run_dir / "run.json").is_file():
                continue
            runs += 1
            try:
                doc = store.run(sha, run_dir.name)
                links = os.path.realpath(str(run_dir / doc["model"])) == os.path.realpath(str(onnx))
                if links and onnx_text:
                    continue  # an ONNX Runtime run of a damaged ONNX: the model's line says it, and its repair
                text = run_problem(store, sha, run_dir.name, doc) or _run_hash(run_dir / doc["model"], doc, hashes)
            except (EdgekitError, KeyError) as exc:
                doc, text = {}, "run.json is unreadable (%s)" % exc
            if text:
                problem(sha, run_dir.name, run_dir / str(doc.get("model") or "run.json"), text,
                        "build it again: %s" % rebuild_command(sha, doc))
    now = _dangling_current(store)
    if now:
        problem(now[0], now[1], store.link, "current points at a run that is not in the store",
                "activate one: edgekit models activate SHA")
    return {"root": str(store.root), "models": models, "runs": runs, "problems": problems, "intact": not problems}


def problem_line(item: Dict[str, Any]) -> str:
    what = item["sha256"][:12] + ("/" + item["key"] if item["key"] else "")
    return "%s: %s (%s): %s" % (what, item["problem"], item["path"], item["fix"])


def _hashed_problem(store: Store, sha: str, hashes: Dict[str, str]) -> Optional[str]:
    text = model_problem(store, sha)
    if text:
        return text
    path = store.model_dir(sha) / "model.onnx"
    got = hashes.setdefault(os.path.realpath(str(path)), sha256_file(path))
    return None if got == sha else "model.onnx has sha256 %s, not %s" % (got[:12], sha[:12])


def _run_hash(path: Path, doc: Dict[str, Any], hashes: Dict[str, str]) -> Optional[str]:
    real = os.path.realpath(str(path))
    got = hashes.get(real) or hashes.setdefault(real, sha256_file(path))
    want = str(doc.get("model_sha256"))
    return None if got == want else "%s has sha256 %s, run.json says %s" % (doc["model"], got[:12], want[:12])


def _dangling_current(store: Store) -> Optional[tuple]:
    if not store.link.is_symlink():
        return None
    parts = Path(os.readlink(str(store.link))).parts
    if len(parts) == 4 and (store.run_dir(parts[1], parts[3]) / "run.json").is_file():
        return None
    return (parts[1], parts[3]) if len(parts) == 4 else ("?" * 12, os.readlink(str(store.link)))
