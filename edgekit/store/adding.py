"""``edgekit models add``: an ONNX (+ its manifest, + an evaluation set) into the store, by content.

Everything is checked before the store is touched (the file parses as ONNX, the evaluation set has its data, the
manifest belongs to the file). A new model is a temporary folder renamed into place; the same content added again
is checked (size and sha256 of the stored model.onnx), copied again when missing or damaged, and gets --eval and
--version: each file written beside and renamed over, under the store's lock.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from edgekit.errors import EdgekitError
from edgekit.manifest import disk_errors, read_manifest, sha256_file, utc_now, write_json_atomic
from edgekit.store import files, integrity
from edgekit.store.inputs import check_eval_set, check_onnx

if TYPE_CHECKING:
    from edgekit.store.store import Store


def add(store: Store, onnx_path: Path, eval_dir=None, version: Optional[str] = None) -> Dict[str, Any]:
    """Copy an ONNX (+ its manifest, + an evaluation set) into the store: {entry, added, changes}. Everything
    is checked first (the file parses as ONNX, the evaluation set has its data). Adding the same content again
    repairs its stored model.onnx if missing or damaged, and sets --version and --eval (``changes``: what)."""
    onnx_path = Path(onnx_path)
    if not onnx_path.exists():
        raise EdgekitError("%s not found: give an ONNX file (.onnx), e.g. from edgekit export" % onnx_path)
    if not onnx_path.is_file() or onnx_path.suffix.lower() != ".onnx":
        raise EdgekitError("%s: give an ONNX file (.onnx), e.g. from edgekit export" % onnx_path)
    if onnx_path.stat().st_size == 0:
        raise EdgekitError("%s is empty (0 bytes): copy it again" % onnx_path)
    if eval_dir is not None:
        check_eval_set(Path(eval_dir))
    check_onnx(onnx_path)
    manifest = read_manifest(onnx_path)
    sha = sha256_file(onnx_path)
    if manifest and manifest.get("sha256") and manifest["sha256"] != sha:
        raise EdgekitError("%s has sha256 %s but its manifest says %s: the file changed after export or the "
                           "manifest belongs to another file; copy both again" % (onnx_path, sha[:12],
                                                                                  manifest["sha256"][:12]))
    with store._locked("add"):
        if (store.model_dir(sha) / "entry.json").is_file():
            entry, changes = _add_again(store, sha, onnx_path, manifest, eval_dir, version)
            return {"entry": entry, "added": False, "changes": changes}
        files.sweep(store.models)
        files.remove_dir(store.model_dir(sha))  # a folder without entry.json was never a complete model
        tmp = files.temp_dir(store.models, sha[:12])
        try:
            with disk_errors(store.models):
                files.check_free_space(store.models, onnx_path.stat().st_size * 2, onnx_path.name)
                copied = files.copy_hashed(onnx_path, tmp / "model.onnx")
                if copied != sha:
                    raise EdgekitError("%s changed while it was copied: wait for the copy to it to finish and "
                                       "add it again" % onnx_path)
                if manifest is not None:
                    shutil.copyfile(str(onnx_path) + ".json", str(tmp / "model.onnx.json"))
                if eval_dir is not None:
                    shutil.copytree(str(eval_dir), str(tmp / "eval"))
                entry = {"sha256": sha, "name": onnx_path.name, "version": version or (manifest or {}).get(
                    "version"), "added": utc_now(), "size": onnx_path.stat().st_size, "eval": eval_dir is not None}
                write_json_atomic(tmp / "entry.json", entry)
                (tmp / "runs").mkdir()
                files.publish_dir(tmp, store.model_dir(sha))
        finally:
            if tmp.exists():
                shutil.rmtree(str(tmp), ignore_errors=True)
    return {"entry": entry, "added": True, "changes": []}


def _add_again(store: Store, sha: str, onnx_path: Path, manifest, eval_dir, version: Optional[str]
               ) -> Tuple[Dict[str, Any], List[str]]:
    """A model already stored, added again (under the lock): its model.onnx checked (size and sha256) and
    copied again when missing or damaged, its manifest restored, --eval and --version applied."""
    folder, changes = store.model_dir(sha), []
    entry = store.entry(sha)
    files.sweep(folder)
    with disk_errors(folder):
        problem = integrity.model_problem(store, sha, full=True)
        if problem:
            files.check_free_space(folder, onnx_path.stat().st_size, onnx_path.name)
            files.replace_file(onnx_path, folder / "model.onnx", sha)
            changes.append("repaired %s: its stored copy was damaged (%s); copied again" % (sha[:12], problem))
        if manifest is not None and not (folder / "model.onnx.json").is_file():
            files.replace_file(str(onnx_path) + ".json", folder / "model.onnx.json")
            changes.append("repaired %s: its manifest model.onnx.json was missing; copied again" % sha[:12])
        if eval_dir is not None:
            _replace_eval(folder, eval_dir)
            changes.append("%s: evaluation set %s" % (sha[:12], "replaced" if entry.get("eval") else "added"))
        if version and version != entry.get("version"):
            changes.append("%s: version %s -> %s" % (sha[:12], entry.get("version") or "-", version))
        updated = dict(entry, eval=bool(entry.get("eval") or eval_dir is not None),
                       version=version or entry.get("version"))
        if updated != entry:
            write_json_atomic(folder / "entry.json", updated)
    return updated, changes


def _replace_eval(folder: Path, eval_dir) -> None:
    """A model added again with an evaluation set gets it (replacing the one it had): the same ONNX shipped
    with its data later is gated on that data. Copied beside, then renamed over."""
    tmp = files.temp_dir(folder, "eval")
    try:
        shutil.copytree(str(eval_dir), str(tmp / "eval"))
        files.remove_dir(folder / "eval")
        files.publish_dir(tmp / "eval", folder / "eval")
    finally:
        if tmp.exists():
            shutil.rmtree(str(tmp), ignore_errors=True)
