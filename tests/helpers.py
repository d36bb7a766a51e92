"""Helpers shared by the CLI tests."""

from click.testing import CliRunner

from edgekit.cli import cli


def jetson_script(name):
    """jetson/NAME.py as a module, loaded from its file (the GPU check's scripts are no package: ``jetson`` is
    jetson-inference's package name on a Jetson)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "jetson" / ("%s.py" % name)
    spec = importlib.util.spec_from_file_location("edgekit_jetson_%s" % name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(args, runner=None):
    """Invoke the edgekit CLI in-process; returns the click Result (exceptions stay in the result)."""
    return (runner or CliRunner()).invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments):
    """A user error: non-zero exit, no traceback, one 'error:' line naming what went wrong."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment.lower() in errors[0].lower(), errors[0]


def detection_differences(ref, got, conf=0.25, conf_tol=0.02, box_atol=1.0, match_iou=0.5):
    """What two correct but numerically different paths (host vs in-graph letterbox, FP32 vs FP16, batch 1 vs 4)
    must not do to one frame's detections; one line per difference, empty when they agree.

    Boxes are paired one-to-one by IoU. A paired box keeps its class, its score within ``conf_tol`` and its
    corners within ``box_atol`` pixels. A box found on one side only must score within ``conf_tol`` of ``conf``:
    a score at the threshold may cross it either way, and how many boxes sit there depends on the training run
    (seen: one within 1e-4 of 0.25 on 48 frames), so no count of boxes is compared.
    """
    from edgekit.eval.compare import match

    def at(box):
        return [round(float(v), 1) for v in box]

    lines = []
    pairs = match(ref, got, match_iou)
    for i, j, _ in pairs:
        where = "box %s (score %.4f)" % (at(ref.xyxy[i]), ref.confidence[i])
        if ref.class_id[i] != got.class_id[j]:
            lines.append("class: %s is class %d, then %d" % (where, ref.class_id[i], got.class_id[j]))
        if abs(float(ref.confidence[i]) - float(got.confidence[j])) > conf_tol:
            lines.append("score: %s scores %.4f" % (where, got.confidence[j]))
        if abs(ref.xyxy[i] - got.xyxy[j]).max() > box_atol:
            lines.append("box: %s is at %s" % (where, at(got.xyxy[j])))
    for side, dets, paired in (("only in the first", ref, {p[0] for p in pairs}),
                               ("only in the second", got, {p[1] for p in pairs})):
        lines += ["%s: box %s class %d scores %.4f, clear of conf %g" % (
                  side, at(dets.xyxy[k]), dets.class_id[k], dets.confidence[k], conf)
                  for k in range(len(dets)) if k not in paired and dets.confidence[k] >= conf + conf_tol]
    return lines


def assert_same_detections(per_frame, conf=0.25, conf_tol=0.02, box_atol=1.0):
    """No ``detection_differences`` over ``[(reference, candidate)]`` per frame, but for a class change on at most
    one pair in 20: a box whose two best classes score within the paths' difference may flip (a few anchors in
    100 of the trained fixture have two classes within 0.01). The reference must find something to compare."""
    from edgekit.eval.compare import match

    assert sum(len(ref) for ref, _ in per_frame) > 0, "the reference finds no box: nothing to compare"
    paired = sum(len(match(ref, got, 0.5)) for ref, got in per_frame)
    lines = ["frame %d %s" % (n, line) for n, (ref, got) in enumerate(per_frame)
             for line in detection_differences(ref, got, conf, conf_tol, box_atol)]
    flips = sum(line.split(" ", 2)[2].startswith("class:") for line in lines)
    assert len(lines) == flips <= max(1, paired // 20), lines


def random_init_checkpoint(yaml_name, folder):
    """``YOLO(yaml_name)`` with seed-0 random weights saved as ``folder/STEM.pt``: torch and ONNX compared on the same
    weights, and the checkpoint loading path exercised, with no download."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = folder / (yaml_name.rsplit(".", 1)[0] + ".pt")
    YOLO(yaml_name).save(str(path))
    return path


def noisy_copy(onnx_path, dest, noise: float = 0.3, seed: int = 0):
    """A copy of an ONNX whose conv weights carry ``noise`` relative Gaussian noise: a model that really lost
    accuracy (the synthetic YOLOv8n: mAP50-95 ~0.10 instead of ~0.36 at 30%)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    rng = np.random.default_rng(seed)
    for init in proto.graph.initializer:
        weights = numpy_helper.to_array(init)
        if weights.ndim == 4:
            noisy = weights * (1 + noise * rng.standard_normal(weights.shape))
            init.CopyFrom(numpy_helper.from_array(noisy.astype(weights.dtype), init.name))
    onnx.save(proto, str(dest))
    return dest
