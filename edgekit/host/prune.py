"""``edgekit prune``: shrink a YOLOv8 with NVIDIA ModelOpt FastNAS under a FLOPs (or params) budget,
fine-tune it with the ultralytics trainer, export it, and measure it against the baseline.

Making FastNAS trace YOLOv8 (found on ModelOpt 0.47 / ultralytics 8.4): torch.fx cannot trace
``C2f.forward`` (a list of ``chunk`` outputs) nor ``DetectionModel.forward(x, *args, **kwargs)``; the fallback
trace then crashes on ``Concat``. So during search and restore, every C2f runs ultralytics' own
``forward_split`` (same math, traceable) and the root is swapped to a subclass with a plain ``forward(x)``
(fx traces ``type(model).forward``, so an instance attribute would not do). After search the model is a plain
``DetectionModel`` with smaller convs again: it trains, saves and exports without ModelOpt.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from edgekit.errors import EdgekitError
from edgekit.host.finetune import baseline_label, finetune, finetune_baseline, late_step
from edgekit.lazy import lazy_import, require
from edgekit.log import info, phase

MIN_CALIB_BATCHES = 50  # FastNAS re-calibrates BatchNorm per candidate only with >= 50 batches


def _traceable_class():
    from ultralytics.nn.tasks import DetectionModel

    class TraceableDetectionModel(DetectionModel):
        def forward(self, x):  # plain forward(x): what torch.fx can trace
            return self._predict_once(x)

    return TraceableDetectionModel


def plain(model, cls):
    """Undo what ``traceable`` did, on ``model`` or on the model ModelOpt returned from it: class ``cls`` and the
    class's own C2f forward (the pruned model may hold new module objects, so every C2f is checked)."""
    from ultralytics.nn.modules import C2f

    model.__class__ = cls
    for m in model.modules():
        if isinstance(m, C2f) and "forward" in m.__dict__:
            del m.forward
    return model


@contextlib.contextmanager
def traceable(model) -> Iterator[Any]:
    """Make ``model`` traceable for ModelOpt inside the block; plain DetectionModel again after it."""
    from ultralytics.nn.modules import C2f

    original_class = model.__class__
    model.__class__ = _traceable_class()
    for m in model.modules():
        if isinstance(m, C2f):
            m.forward = m.forward_split
    try:
        yield model
    finally:
        plain(model, original_class)


class CyclingLoader:
    """Yields ``batches`` batches, cycling a smaller loader: FastNAS needs >= 50 for BatchNorm calibration."""

    def __init__(self, loader, batches: int) -> None:
        self.loader, self.batches = loader, batches

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        return itertools.islice(itertools.chain.from_iterable(itertools.repeat(self.loader)), self.batches)


def loaders(data: str, imgsz: int, batch: int, score_images: int):
    """(train loader without augmentation, validation loader of ``score_images`` images, dataset dict)."""
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    if not Path(data).is_file():
        raise EdgekitError("dataset %s not found: give an ultralytics data.yaml (e.g. coco128.yaml)" % data)
    try:
        info_ = check_det_dataset(data, autodownload=False)
    except Exception as exc:
        raise EdgekitError("cannot use dataset %s: %s" % (data, str(exc).strip().splitlines()[0])) from exc
    cfg = get_cfg(overrides={"imgsz": imgsz, "batch": batch, "rect": False, "mosaic": 0.0})
    train = build_yolo_dataset(cfg, info_["train"], batch, info_, mode="val", stride=32)
    val = build_yolo_dataset(cfg, info_["val"], batch, info_, mode="val", stride=32)
    subset = torch.utils.data.Subset(val, range(min(score_images, len(val))))
    # a Subset hides the dataset's collate_fn (labels of different lengths): pass it on explicitly
    val_loader = torch.utils.data.DataLoader(subset, batch_size=batch, shuffle=False, collate_fn=val.collate_fn)
    return build_dataloader(train, batch, 0, shuffle=False), val_loader, info_, cfg


def loss_score(val_loader, cfg):
    """Score for FastNAS (higher is better): minus the detection loss on held-out images."""
    import torch
    from ultralytics.utils.loss import v8DetectionLoss

    def score(model) -> float:
        model.args = cfg
        criterion = v8DetectionLoss(model)
        was_training = model.training
        model.train()  # raw head outputs, as the loss expects; no gradients, BN stats are FastNAS's business
        total = 0.0
        with torch.no_grad():
            for b in val_loader:
                loss, _ = criterion(model(b["img"].float() / 255), b)
                total += float(loss.sum())
        model.train(was_training)
        return -total

    return score


def search_key(weights_sha: str, constraints: Dict[str, Any], imgsz: int, data: str, calib: int, scores: int) -> str:
    text = json.dumps([weights_sha, constraints, imgsz, str(Path(data).resolve()), calib, scores], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fastnas(model, constraints: Dict[str, Any], imgsz: int, train_loader, score, calib_batches: int,
            checkpoint: Path):
    """Run the FastNAS search; returns the pruned model (a DetectionModel with smaller convs)."""
    import torch

    mtp = lazy_import("modelopt.torch.prune")
    config = {"data_loader": CyclingLoader(train_loader, calib_batches), "score_func": score,
              "collect_func": lambda b: b["img"].float() / 255, "checkpoint": str(checkpoint),
              "max_iter_data_loader": calib_batches, "verbose": False}
    dummy = torch.zeros(1, 3, imgsz, imgsz)
    model = model.float().cpu()
    with traceable(model):
        try:
            pruned, _ = mtp.prune(model, mode="fastnas", constraints=constraints, dummy_input=dummy, config=config)
        except ValueError as exc:
            if "constraints can be satisfied" not in str(exc):
                raise
            raise EdgekitError(unreachable_message(str(exc), constraints)) from exc
    return plain(pruned, model.__class__)


def unreachable_message(profile: str, constraints: Dict[str, Any]) -> str:
    """One line from ModelOpt's profiling table: the smallest subnet, as a share of the baseline."""
    import re

    key = next(iter(constraints))
    m = re.search(r"%s\s*\S\s*([\d.]+)([KMGT]?)\s*\S\s*[\d.]+[KMGT]?\s*\S\s*([\d.]+)([KMGT]?)" % key, profile)
    if not m:
        return "FastNAS cannot meet %s within YOLOv8's search space: use a looser budget" % constraints
    scale = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    smallest = float(m.group(1)) * scale[m.group(2)]
    largest = float(m.group(3)) * scale[m.group(4)]
    return ("FastNAS cannot meet --%s %s: the smallest subnet of this model's search space has %s%s %s, %.0f%% of "
            "the baseline; use a budget of at least %.0f%%" % (key, constraints[key], m.group(1), m.group(2), key,
                                                               100 * smallest / largest, 100 * smallest / largest + 1))


def save_modelopt(pruned, path: Path) -> None:
    mto = lazy_import("modelopt.torch.opt")
    path.parent.mkdir(parents=True, exist_ok=True)
    mto.save(pruned, str(path))


def restore_modelopt(weights: str, path: Path):
    """A fresh model from ``weights`` with the pruned architecture and weights saved in ``path``."""
    mto = lazy_import("modelopt.torch.opt")
    from ultralytics import YOLO

    model = YOLO(weights).model.float().cpu()
    with traceable(model):
        restored = mto.restore(model, str(path))
    return plain(restored, model.__class__)


def count(model, imgsz: int) -> Dict[str, float]:
    """Params and GFLOPs counted with ultralytics' thop-based counter, independent of ModelOpt."""
    from ultralytics.utils.torch_utils import get_flops

    return {"params": int(sum(p.numel() for p in model.parameters())), "gflops": round(get_flops(model, imgsz), 3)}


def parse_budget(flops: Optional[str], params: Optional[str]) -> Dict[str, Any]:
    """``--flops 66%`` / ``--params 60%`` (or an absolute number) -> ModelOpt constraints."""
    if flops and params:
        raise EdgekitError("give --flops or --params, not both")
    key, value = ("params", params) if params else ("flops", flops or "66%")
    text = str(value).strip()
    try:
        number = float(text[:-1]) if text.endswith("%") else float(text)
    except ValueError:
        raise EdgekitError("--%s %s: use a percentage of the baseline (66%%) or a number" % (key, value)) from None
    if not math.isfinite(number) or number <= 0 or (text.endswith("%") and number >= 100):
        raise EdgekitError("--%s %s: a budget must be above 0 and below 100%%" % (key, value))
    return {key: text if text.endswith("%") else number}


def prune(weights: str, data: str, flops: Optional[str] = None, params: Optional[str] = None, imgsz: int = 640,
          finetune_epochs: int = 50, batch: int = 16, calib_batches: int = MIN_CALIB_BATCHES, score_images: int = 64,
          out: str = "engines", cache: str = ".edgekit-cache", device: Optional[str] = None,
          download: bool = False, trust_weights: bool = False, baseline_as_is: bool = False) -> Dict[str, Any]:
    """Prune ``weights`` under the budget, fine-tune, export ``out/NAME-pruned.onnx``; returns a summary dict.

    The baseline it is compared with gets the same fine-tuning (``out/NAME-finetuned-Nep.onnx``) unless
    ``baseline_as_is`` or no fine-tuning: otherwise the comparison would credit the pruning with what the
    fine-tuning did. Steps after the search fail with one line naming the step and what is already written."""
    from edgekit.host.export import export, load_model, onnx_name, resolve_weights
    from edgekit.manifest import sha256_file

    constraints = parse_budget(flops, params)
    if calib_batches < MIN_CALIB_BATCHES:
        raise EdgekitError("--calib-batches %d: FastNAS recalibrates BatchNorm only with >= %d batches"
                           % (calib_batches, MIN_CALIB_BATCHES))
    # everything this command needs, before its slow part (search, fine-tune) starts: the measurement at the
    # end runs edgekit eval (pycocotools, PyYAML)
    require("pycocotools.cocoeval", "yaml", "torch", "ultralytics", "onnxsim", "modelopt.torch.prune")
    spec = resolve_weights(weights, download, trust_weights)
    train_loader, val_loader, _, cfg = loaders(data, imgsz, batch, score_images)  # bad data fails before work
    with phase("loading %s" % weights):
        yolo = load_model(spec)
    import copy
    import os

    import torch

    # ultralytics sets OMP_NUM_THREADS=1 on import when it is unset: search and CPU fine-tuning want every core
    torch.set_num_threads(int(os.environ.get("EDGEKIT_THREADS", os.cpu_count() or 1)))
    baseline = yolo.model.float().cpu()
    fair = finetune_epochs > 0 and not baseline_as_is
    # the search changes the model it is given; a fair baseline starts from the same weights (also random init)
    untouched = copy.deepcopy(baseline) if fair else None
    before = count(baseline, imgsz)
    weights_sha = sha256_file(spec.path) if spec.path else spec.arg
    key = search_key(weights_sha, constraints, imgsz, data, calib_batches, score_images)
    cache_dir = Path(cache)
    checkpoint, state = cache_dir / ("fastnas-%s.pth" % key), cache_dir / ("pruned-%s.mto.pth" % key)
    with phase("FastNAS search under %s (checkpoint %s)" % (constraints, checkpoint)):
        lazy_import("modelopt.torch.prune")
        torch.manual_seed(0)
        pruned = fastnas(baseline, constraints, imgsz, train_loader, loss_score(val_loader, cfg), calib_batches,
                         checkpoint)
    save_modelopt(pruned, state)
    after = count(pruned, imgsz)
    info("pruned: params %.2fM -> %.2fM, GFLOPs %.2f -> %.2f at %d"
         % (before["params"] / 1e6, after["params"] / 1e6, before["gflops"], after["gflops"], imgsz))
    work = cache_dir / ("run-%s" % key)
    base_name = onnx_name(spec.stem, imgsz, 1, False)
    kept = {"search": "%s (a rerun resumes from it)" % checkpoint}  # what a late failure leaves behind

    # the baseline first: a failure in the pruned model's fine-tune then loses only that fine-tune
    if fair:
        with late_step("fine-tuning the baseline", kept, work), phase("fine-tuning the baseline (%d epochs)"
                                                                     % finetune_epochs):
            base_tuned = finetune_baseline(untouched, spec.path if spec.kind == "pt" else None, data, imgsz,
                                           finetune_epochs, batch, cache_dir, work, device)
        del untouched
        kept["fine-tuned baseline checkpoint"] = str(base_tuned)
        base_extra = {"model": spec.stem,  # not the checkpoint's name (last)
                      "baseline_finetune": {"epochs": finetune_epochs, "weights": weights, "data": data,
                                            "imgsz": imgsz, "batch": batch, "for": "edgekit prune"}}
        with late_step("exporting the fine-tuned baseline", kept, work):
            base_onnx = export(weights=str(base_tuned), imgsz=imgsz, out=out, extra=base_extra,
                               name=base_name[:-len(".onnx")] + "-finetuned-%dep.onnx" % finetune_epochs)
    else:
        base_tuned = None
        with late_step("exporting the baseline", kept, work):
            base_onnx = export(weights=weights, imgsz=imgsz, out=out, download=download, trust_weights=trust_weights)
    kept["baseline"] = str(base_onnx)

    stem = spec.stem + "-pruned"
    if finetune_epochs > 0:
        with late_step("fine-tuning the pruned model", kept, work), phase("fine-tuning the pruned model (%d epochs)"
                                                                                            % finetune_epochs):
            tuned = finetune(pruned, data, imgsz, finetune_epochs, batch, work, device)
    else:
        tuned = work / (stem + ".pt")
        tuned.parent.mkdir(parents=True, exist_ok=True)
        # not fine-tuned: as trained as the baseline was (a random-init baseline stays labelled untrained)
        torch.save({"model": pruned.half(), "train_args": (getattr(yolo, "ckpt", None) or {}).get("train_args") or {},
                    "edgekit": {"pruned_without_finetune": True}}, str(tuned))
    kept["pruned checkpoint"] = str(tuned)
    label = baseline_label(finetune_epochs, baseline_as_is)
    prune_record = {"method": "modelopt fastnas", "constraints": constraints, "before": before, "after": after,
                    "finetune_epochs": finetune_epochs, "modelopt_state": str(state),
                    "search_checkpoint": str(checkpoint),
                    # lineage: the baseline this run compares against (edgekit report shows changes against it)
                    "baseline_onnx": str(base_onnx), "baseline_sha256": sha256_file(base_onnx), "baseline": label}
    extra = {"model": spec.stem, "pruned": True, "prune": prune_record}
    with late_step("exporting the pruned model", kept, work):
        pruned_onnx = export(weights=str(tuned), imgsz=imgsz, out=out, extra=extra,
                             name=base_name[:-len(".onnx")] + "-pruned.onnx")
    return {"baseline": str(base_onnx), "pruned": str(pruned_onnx), "before": before, "after": after,
            "constraints": constraints, "modelopt_state": str(state), "checkpoint": str(tuned),
            "finetune_epochs": finetune_epochs, "baseline_label": label,
            "baseline_finetuned": fair, "baseline_checkpoint": str(base_tuned) if base_tuned else None,
            "baseline_sha256": prune_record["baseline_sha256"]}
