"""The model store on a box: ONNX models by content, their runnables by what went into them, one ``current``.

Layout under HOME/store (``HOME``: ``--home``, ``$EDGEKIT_HOME`` or ``~/edgekit``)::

    .lock                          one writer at a time (add, build, activate, rollback, gc)
    models/<sha256>/               model.onnx (+ model.onnx.json), entry.json, eval/ (optional)
        runs/<key>/                run.json + model.engine (+ .json), or links to the ONNX (ONNX Runtime);
                                   gates.json once edgekit models gate measured it
    current -> models/<sha>/runs/<key>     relative symlink, replaced atomically
    history.json                   every switch, newest last

Every write is a temporary folder or file renamed into place (:mod:`edgekit.store.files`), so a process killed at
any moment leaves the old state or the new one, and the same command run again completes. A file damaged or
deleted behind the store's back is seen (:mod:`edgekit.store.integrity`): a run whose model file is missing or of
another size is not built (``build`` builds it again), adding the same ONNX again copies a damaged one again, and
``edgekit models verify`` re-hashes everything.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from edgekit.errors import EdgekitError
from edgekit.log import info, warn
from edgekit.manifest import disk_errors, utc_now, write_json_atomic
from edgekit.store import adding, choose, files, history, integrity
from edgekit.store.build import Build, check_build_options, engine_run, onnx_run, tensorrt_build, tensorrt_device
from edgekit.store.keys import ONNXRUNTIME_KEY, SHA_RE, check_backend, check_key, home_dir, looks_like_sha, run_key

Run = Dict[str, Any]


class Store:
    """The store under ``home`` (see the module doc). ``device``: TensorRT facts {tensorrt, sm, gpu} to key
    engines by, instead of asking this box's TensorRT (tests); ``build``: the engine build callable (tests)."""

    def __init__(self, home=None, device: Optional[Dict[str, Any]] = None, build: Optional[Build] = None) -> None:
        self.home = home_dir(home)
        self.root = self.home / "store"
        self.models = self.root / "models"
        self.link = self.root / "current"
        self.history_path = self.root / "history.json"
        self._device, self._build = device, build

    # ----- reading -----
    def model_dir(self, sha: str) -> Path:
        return self.models / sha

    def run_dir(self, sha: str, key: str) -> Path:
        return self.models / sha / "runs" / key

    def has_run(self, sha: str, key: str) -> bool:
        """Run ``key`` of ``sha`` is built and its model file is there, at its size (a damaged run is not built:
        ``build`` builds it again)."""
        try:
            return self.run_problem(sha, key) is None
        except EdgekitError:  # run.json unreadable
            return False

    def run_problem(self, sha: str, key: str) -> Optional[str]:
        """What is wrong with a run at a glance (:func:`edgekit.store.integrity.run_problem`), or None."""
        return integrity.run_problem(self, sha, key)

    def entry(self, sha: str) -> Dict[str, Any]:
        return _read_json(self.model_dir(sha) / "entry.json")

    def run(self, sha: str, key: str) -> Run:
        folder = self.run_dir(sha, key)
        doc = _read_json(folder / "run.json")
        return dict(doc, sha256=sha, key=key, path=str(folder), model_path=str(folder / doc["model"]))

    def runs(self, sha: str) -> List[Run]:
        folder = self.model_dir(sha) / "runs"
        names = sorted(p.name for p in folder.iterdir() if (p / "run.json").is_file()) if folder.is_dir() else []
        return [self.run(sha, key) for key in names]

    def entries(self) -> List[Dict[str, Any]]:
        """Every model (entry.json + its runs, and whether one of them is current), oldest first."""
        now = self._current_id()
        out = []
        for folder in sorted(self.models.iterdir()) if self.models.is_dir() else []:
            if SHA_RE.match(folder.name) and (folder / "entry.json").is_file():
                runs = self.runs(folder.name)
                for run in runs:
                    run["current"] = (folder.name, run["key"]) == now
                    run["problem"] = integrity.run_problem(self, folder.name, run["key"], run)
                out.append(dict(self.entry(folder.name), runs=runs, current=bool(now and now[0] == folder.name),
                                problem=integrity.model_problem(self, folder.name)))
        return sorted(out, key=lambda e: (e.get("added") or "", e["sha256"]))

    def current(self) -> Optional[Run]:
        """run.json of the run ``current`` names (+ sha256, key, path, model_path), or None."""
        now = self._current_id()
        return self.run(*now) if now and self.has_run(*now) else None

    def current_problem(self) -> Optional[str]:
        """What is wrong with the run ``current`` names when it is damaged (then :meth:`current` is None), or None."""
        now = self._current_id()
        if now is None or self.has_run(*now):
            return None
        return "%s/%s: %s; %s (edgekit models verify checks the whole store)" % (
            now[0][:12], now[1], integrity.problem_text(self, *now), integrity.repair_hint(self, *now))

    def _current_id(self) -> Optional[Tuple[str, str]]:
        if not self.link.is_symlink():
            return None
        parts = Path(os.readlink(str(self.link))).parts  # models/<sha>/runs/<key>
        if len(parts) != 4 or parts[0] != "models" or parts[2] != "runs":
            raise EdgekitError("%s points at %s, not at a store run: activate one with edgekit models activate"
                               % (self.link, os.readlink(str(self.link))))
        return parts[1], parts[3]

    def history(self) -> List[Dict[str, Any]]:
        return history.read(self.history_path)

    def previous(self) -> Optional[Run]:
        """The run a rollback goes back to (see :func:`edgekit.store.history.previous`), or None."""
        entry = history.previous(self.history(), self._current_id(), self.has_run)
        return self.run(entry["sha256"], entry["key"]) if entry else None

    def resolve(self, ref: str) -> str:
        """A full sha256 from ``current``, a full sha256 or a unique prefix of at least 8 hex digits."""
        ref = (ref or "").strip().lower()
        if ref == "current":
            now = self._current_id()
            if now is None:
                raise EdgekitError("no current model in %s: activate one with edgekit models activate SHA" % self.root)
            return now[0]
        if not looks_like_sha(ref):
            raise EdgekitError("%r is not a model sha256: give 8 or more hex digits of one (edgekit models list) "
                               "or current" % ref)
        found = [p.name for p in self.models.glob(ref + "*") if SHA_RE.match(p.name)] if self.models.is_dir() else []
        if len(found) == 1:
            return found[0]
        if found:
            raise EdgekitError("%s matches %d models: give more hex digits" % (ref, len(found)))
        raise EdgekitError("no model %s in %s: add it first with edgekit models add MODEL.onnx" % (ref, self.root))

    # ----- writing -----
    def add(self, onnx_path, eval_dir=None, version: Optional[str] = None) -> Tuple[Dict[str, Any], bool]:
        """Copy an ONNX (+ its manifest, + an evaluation set) into the store; (entry, added). See :meth:`add_report`."""
        report = self.add_report(onnx_path, eval_dir, version)
        return report["entry"], report["added"]

    def add_report(self, onnx_path, eval_dir=None, version: Optional[str] = None) -> Dict[str, Any]:
        """{entry, added, changes}: see :func:`edgekit.store.adding.add`."""
        return adding.add(self, Path(onnx_path), eval_dir, version)

    def key_for(self, sha: str, backend: str, precision: Optional[str], dla_core: Optional[int] = None,
                device: Optional[Dict[str, Any]] = None, build_options: Optional[Dict[str, Any]] = None) -> str:
        check_backend(backend)
        if backend == "onnxruntime":
            if precision not in (None, "fp32") or dla_core is not None:
                raise EdgekitError("ONNX Runtime runs the ONNX as it is: --fp16/--int8/--best and --dla are for "
                                   "--backend tensorrt")
            return ONNXRUNTIME_KEY
        options = check_build_options(build_options)
        return run_key(backend, sha, precision or "fp16", dla_core, self.device(device), choose.key_options(options))

    def device(self, device: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        if device is None and self._device is None:
            self._device = tensorrt_device()
        return dict(device or self._device or {})

    def ensure_run(self, sha: str, backend: str, precision: Optional[str] = None, dla_core: Optional[int] = None,
                   build: Optional[Build] = None, device: Optional[Dict[str, Any]] = None,
                   build_options: Optional[Dict[str, Any]] = None) -> Tuple[Run, bool]:
        """The run of model ``sha`` on ``backend`` (TensorRT: built here, into a temporary folder renamed into
        place, precision fp16 unless given); (run, built). A run already there is returned as it is; a damaged one
        (its model file missing or of another size) is built again, then renamed over the old folder."""
        sha = self.resolve(sha)
        key = self.key_for(sha, backend, precision, dla_core, device, build_options)
        if self.has_run(sha, key):
            return self.run(sha, key), False
        with self._locked("build"):
            if self.has_run(sha, key):
                return self.run(sha, key), False
            problem = integrity.model_problem(self, sha)
            if problem:
                raise EdgekitError("model %s is damaged in the store (%s): add its ONNX again to repair it (edgekit "
                                   "models add MODEL.onnx), then build" % (sha[:12], problem))
            if self.run_dir(sha, key).exists():
                info("run %s/%s is damaged (%s): building it again" % (sha[:12], key,
                                                                       integrity.problem_text(self, sha, key)))
            runs = self.model_dir(sha) / "runs"
            files.sweep(runs)
            tmp = files.temp_dir(runs, key)
            try:
                with disk_errors(runs):
                    if backend == "onnxruntime":
                        doc = onnx_run(self.model_dir(sha), tmp)
                    else:
                        doc = engine_run(self.model_dir(sha), tmp, precision or "fp16", dla_core,
                                         build or self._build or tensorrt_build, self.device(device),
                                         check_build_options(build_options))
                    doc.update(key=key, backend=backend, onnx_sha256=sha, name=self.entry(sha).get("name"),
                               version=self.entry(sha).get("version"), built=utc_now(),
                               model_size=os.path.getsize(str(tmp / doc["model"])))
                    write_json_atomic(tmp / "run.json", doc)
                    files.remove_dir(self.run_dir(sha, key))  # a damaged run's folder, out of the way last
                    files.publish_dir(tmp, self.run_dir(sha, key))
            finally:
                if tmp.exists():
                    shutil.rmtree(str(tmp), ignore_errors=True)
        return self.run(sha, key), True

    def activate(self, sha: str, key: str, action: str = "activate", reason: str = "") -> Tuple[Optional[Run], Run,
                                                                                                   bool]:
        """Point ``current`` at run ``key`` of model ``sha``; (before, after, changed)."""
        sha = self.resolve(sha)
        self._require_run(sha, check_key(key))  # a refusal writes nothing
        with self._locked(action):
            return self._switch(sha, key, action, reason)

    def rollback(self, to_sha: Optional[str] = None, reason: str = "") -> Tuple[Optional[Run], Run]:
        """Back to :meth:`previous` (or to the newest activation of model ``to_sha``); (before, after)."""
        self._rollback_target(to_sha)  # a refusal writes nothing, not even the lock file
        with self._locked("rollback"):
            sha, key = self._rollback_target(to_sha)
            before, after, _ = self._switch(sha, key, "rollback", reason)
        return before, after

    def _rollback_target(self, to_sha: Optional[str]) -> Tuple[str, str]:
        return choose.rollback_target(self, to_sha)

    def _require_run(self, sha: str, key: str) -> None:
        choose.require_run(self, sha, key)

    def _switch(self, sha: str, key: str, action: str, reason: str) -> Tuple[Optional[Run], Run, bool]:
        self._require_run(sha, key)
        before = self.current()
        files.sweep(self.root)  # a pointer or history file an earlier kill left half-made
        was = self._current_id()
        # a switch killed before its history line: the line now, also when this is that very switch run again
        history.record_missing(self.history_path, was if before else None)
        if before is not None and (before["sha256"], before["key"]) == (sha, key):
            return before, before, False
        files.switch_symlink(self.link, "models/%s/runs/%s" % (sha, key))
        history.append(self.history_path, sha, key, action, reason, was)
        integrity.warn_failed_gate(self, sha, key, warn)
        return before, self.run(sha, key), True

    def gc(self, keep: int = 3) -> List[Dict[str, Any]]:
        """Delete every run except current and the ``keep`` runs active before it (newest first), and every
        model left without a run; returns what was removed ({sha256, key} per run, {sha256, key: None} per model).
        A model added but never activated (a candidate whose gate failed) goes too."""
        if keep < 0:
            raise EdgekitError("--keep %d: give 0 or more" % keep)
        removed: List[Dict[str, Any]] = []
        with self._locked("gc"):
            now = self._current_id()
            kept = set(history.newest_runs(self.history(), keep, besides=now))
            if now is not None:
                kept.add(now)
            files.sweep(self.models)
            for entry in self.entries():
                sha = entry["sha256"]
                files.sweep(self.model_dir(sha) / "runs")
                if not any(run_sha == sha for run_sha, _ in kept):
                    files.remove_dir(self.model_dir(sha))
                    removed.append({"sha256": sha, "key": None})
                    continue
                for run in entry["runs"]:
                    if (sha, run["key"]) not in kept:
                        files.remove_dir(self.run_dir(sha, run["key"]))
                        removed.append({"sha256": sha, "key": run["key"]})
        return removed

    def verify(self) -> Dict[str, Any]:
        """Every stored ONNX and run model file re-hashed against its record (:func:`.integrity.verify`)."""
        return integrity.verify(self)

    def plan(self, ref: str, backend: str, precision: Optional[str] = None, dla_core: Optional[int] = None,
             device: Optional[Dict[str, Any]] = None, build_options: Optional[Dict[str, Any]] = None
             ) -> Dict[str, Any]:
        """What add + build + activate would change, without changing it (:func:`edgekit.store.choose.plan`)."""
        return choose.plan(self, ref, backend, precision, dla_core, device, build_options)

    def pick_run(self, ref: str, key: Optional[str] = None, backend: Optional[str] = None,
                 precision: Optional[str] = None, dla_core: Optional[int] = None,
                 build_options: Optional[Dict[str, Any]] = None) -> Tuple[str, str]:
        """(sha, key) of an existing run (:func:`edgekit.store.choose.pick_run`)."""
        return choose.pick_run(self, ref, key, backend, precision, dla_core, build_options)

    def _locked(self, what: str):
        return files.locked(self.root, what, info)


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EdgekitError("%s is unreadable (%s): remove its folder and add or build it again" % (path, exc)) from exc
