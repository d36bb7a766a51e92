"""Fine-tuning for ``edgekit prune`` (the pruned model, and the baseline given the same epochs), and the
one-line failure of a step that comes after the slow search.

A fair comparison fine-tunes both: comparing a pruned-and-fine-tuned model with the baseline as it is credits
the pruning with what the fine-tuning did (an untrained or differently trained baseline makes that large).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Dict, Iterator, Optional

from edgekit.errors import EdgekitError
from edgekit.log import info

REASON_CHARS = 300  # a failure's own words in the one-line error; the traceback file has the rest


def finetune(model, data: str, imgsz: int, epochs: int, batch: int, workdir: Path, device: Optional[str],
             name: str = "finetune") -> Path:
    """Fine-tune ``model`` with the ultralytics trainer in ``workdir/name``; returns the trained checkpoint."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    class GivenModelTrainer(DetectionTrainer):
        def get_model(self, cfg=None, weights=None, verbose=True):
            return model  # the trainer trains the model we hand it, not a fresh one from YAML

    args = dict(model="%s.yaml" % name, data=data, imgsz=imgsz, epochs=epochs, batch=batch, workers=0, plots=False,
                amp=False, project=str(workdir.resolve()), name=name, exist_ok=True, verbose=False, val=False,
                device=device or "cpu")
    trainer = GivenModelTrainer(overrides=args)
    trainer.train()
    return Path(trainer.last)


def finetune_baseline(model, weights_file: Optional[Path], data: str, imgsz: int, epochs: int, batch: int,
                      cache_dir: Path, workdir: Path, device: Optional[str]) -> Path:
    """The baseline fine-tuned like the pruned model (same epochs and settings).

    Trained weights (a file) are fine-tuned once per weights, data and settings and reused from ``cache_dir``
    by later runs (another budget needs the same baseline). Without a file (a YAML: random init, other weights
    each run) it is fine-tuned in this run's ``workdir``."""
    from edgekit.manifest import sha256_file

    if weights_file is None:
        return finetune(model, data, imgsz, epochs, batch, workdir, device, name="baseline")
    settings = [sha256_file(weights_file), str(Path(data).resolve()), imgsz, epochs, batch, device or "cpu"]
    work = cache_dir / ("baseline-%s" % hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:12])
    done = work / "done.json"
    if done.is_file():
        kept = Path(json.loads(done.read_text())["checkpoint"])
        if kept.is_file():
            info("baseline fine-tuned %d epochs with these settings in an earlier run: reusing %s" % (epochs, kept))
            return kept
    tuned = finetune(model, data, imgsz, epochs, batch, work, device, name="baseline")
    done.write_text(json.dumps({"checkpoint": str(tuned), "settings": settings}))  # only once training finished
    return tuned


def baseline_label(finetune_epochs: int, as_is: bool) -> str:
    """How reports name the baseline column."""
    if finetune_epochs <= 0:
        return "baseline"
    if as_is:
        return "baseline (as is)"
    return "baseline (fine-tuned %d epoch%s)" % (finetune_epochs, "" if finetune_epochs == 1 else "s")


def baseline_note(finetune_epochs: int, as_is: bool) -> str:
    """One line under a report: which baseline the changes are against."""
    if finetune_epochs <= 0:
        return "baseline: the weights as given; the pruned model was not fine-tuned either"
    epochs = "%d epoch%s" % (finetune_epochs, "" if finetune_epochs == 1 else "s")
    if as_is:
        return ("baseline: the weights as given (--baseline-as-is), not fine-tuned: the changes mix the pruning with "
                "the pruned model's %s of fine-tuning" % epochs)
    return "baseline: fine-tuned %s with the pruned model's settings, so the changes are the pruning's alone" % epochs


def reason(exc: BaseException) -> str:
    """One line for what went wrong: a user error's own words, else the exception's type and first line."""
    if isinstance(exc, EdgekitError):
        return " ".join(str(exc).split())
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if len(text) > REASON_CHARS:
        text = text[:REASON_CHARS - 3] + "..."
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def save_traceback(folder: Path, what: str) -> Optional[Path]:
    """The current exception's traceback in ``folder/failure-traceback.txt`` (None if it cannot be written)."""
    import traceback

    path = folder / "failure-traceback.txt"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("%s failed:\n%s" % (what, traceback.format_exc()))
    except OSError:
        return None
    return path


def kept_text(kept: Dict[str, str]) -> str:
    return "kept: %s" % ", ".join("%s %s" % item for item in kept.items()) if kept else "nothing written yet"


@contextlib.contextmanager
def late_step(what: str, kept: Dict[str, str], trace_dir: Path) -> Iterator[None]:
    """A step after the slow search. Its failure is one line naming the step, why, and what is kept (``kept``:
    label -> path, filled in as the run goes); a bug's traceback goes to a file in ``trace_dir``, named there."""
    try:
        yield
    except EdgekitError as exc:
        raise EdgekitError("%s failed: %s; %s" % (what, reason(exc), kept_text(kept))) from exc
    except Exception as exc:
        where = save_traceback(trace_dir, what)
        raise EdgekitError("%s failed: %s%s; %s" % (what, reason(exc), " (traceback in %s)" % where if where else "",
                                                    kept_text(kept))) from exc
