"""Accuracy where it is lost: classes a model never finds, AP and recall by object size, compare's accuracy."""

import contextlib
import csv
import io
import json

import numpy as np
import onnx
import pytest
from helpers import assert_user_error, invoke
from onnx import helper, numpy_helper

from edgekit.eval.metrics import SIZES, detection_metrics, size_figures

NAMES = {0: "circle", 1: "square", 2: "triangle"}
SIZE_KEYS = ["map50_95_small", "recall_small", "map50_95_medium", "recall_medium", "map50_95_large", "recall_large"]


def boxes(*xywh):
    return np.array([[x, y, x + w, y + h] for x, y, w, h in xywh], np.float64).reshape(-1, 4)


def gt(img_id, xyxy, classes, size=(640, 640)):
    return (img_id, size[0], size[1], xyxy, np.array(classes, np.int64), np.zeros(len(classes), np.int64))


def pred(img_id, xyxy, classes, score=0.9):
    return (img_id, xyxy.astype(np.float32), np.full(len(classes), score, np.float32), np.array(classes, np.int64))


# --- classes a model never finds: zeros, never a crash ---------------------------------------------------------
SCENE = boxes((10, 10, 100, 100), (300, 300, 120, 80), (50, 400, 90, 150))  # one circle, square, triangle


@pytest.mark.parametrize("found", [[1, 2], [0, 2], [0, 1], [], "wrong"])
def test_a_class_without_detections_has_zeros(found):
    """Each class missed in turn, all of them missed, and detections that are all of the wrong class."""
    gts = [gt(1, SCENE, [0, 1, 2])]
    if found == "wrong":  # every box found, each labelled as the next class: detections, none right
        preds, found = [pred(1, SCENE, [1, 2, 0])], []
    else:
        preds = [pred(1, SCENE[found], found)]
    m = detection_metrics(gts, preds, NAMES)
    for row in m["per_class"]:
        hit = 1.0 if row["class_id"] in found else 0.0
        assert (row["map50_95"], row["map50"], row["precision"], row["recall"]) == pytest.approx((hit,) * 4)
        assert row["instances"] == 1 and row["sizes"]["large"]["recall"] == pytest.approx(hit)
        assert row["sizes"]["large"]["map50_95"] == pytest.approx(hit) and row["sizes"]["small"]["map50_95"] is None
    assert m["map50_95"] == pytest.approx(len(found) / 3, abs=1e-4)
    assert m["recall"] == pytest.approx(len(found) / 3, abs=1e-4)
    assert m["sizes"]["large"] == {"instances": 3, "map50_95": pytest.approx(len(found) / 3, abs=1e-4),
                                   "map50": pytest.approx(len(found) / 3, abs=1e-4),
                                   "recall": pytest.approx(len(found) / 3, abs=1e-4)}


def test_nothing_detected_anywhere_and_nothing_to_detect():
    empty = (np.zeros((0, 4)), [])
    m = detection_metrics([gt(1, SCENE, [0, 1, 2]), gt(2, *empty)], [pred(1, *empty), pred(2, *empty)], NAMES)
    assert (m["map50_95"], m["precision"], m["recall"], m["conf_at_max_f1"]) == (0.0, 0.0, 0.0, None)
    assert m["sizes"]["large"] == {"instances": 3, "map50_95": 0.0, "map50": 0.0, "recall": 0.0}
    assert all(row["recall"] == 0.0 for row in m["per_class"])
    # a split without any labelled object: figures of nothing are None, not zeros and not an error
    m = detection_metrics([gt(1, *empty)], [pred(1, SCENE, [0, 1, 2])], NAMES)
    assert m["instances"] == 0 and all(m["sizes"][s]["map50_95"] is None for s in SIZES)
    assert all(row["map50_95"] is None for row in m["per_class"])


# --- by object size, where the answer is known by construction ------------------------------------------------
def test_sizes_by_construction():
    """Large objects found perfectly, small ones never, medium half: per size and per class."""
    small = boxes((10, 10, 20, 20), (100, 10, 25, 30), (200, 10, 31, 31))  # areas 400, 750, 961
    medium = boxes((10, 100, 50, 50), (100, 100, 40, 60))  # 2500, 2400
    large = boxes((10, 300, 200, 150), (300, 300, 100, 100))  # 30000, 10000
    gts = [gt(1, np.concatenate([small, medium]), [0, 0, 1, 0, 1]), gt(2, large, [0, 2])]
    preds = [pred(1, medium[:1], [0]), pred(2, large, [0, 2])]
    m = detection_metrics(gts, preds, NAMES)
    s = m["sizes"]
    assert [s[k]["instances"] for k in SIZES] == [3, 2, 2]
    assert s["small"] == {"instances": 3, "map50_95": 0.0, "map50": 0.0, "recall": 0.0}
    assert s["large"] == {"instances": 2, "map50_95": 1.0, "map50": 1.0, "recall": 1.0}
    assert s["medium"]["recall"] == pytest.approx(0.5) and s["medium"]["map50_95"] == pytest.approx(0.5)
    circle, square, triangle = m["per_class"]
    assert circle["sizes"]["small"]["instances"] == 2 and circle["sizes"]["medium"]["recall"] == 1.0
    assert square["sizes"]["medium"] == {"instances": 1, "map50_95": 0.0, "map50": 0.0, "recall": 0.0}
    assert square["sizes"]["large"] == {"instances": 0, "map50_95": None, "map50": None, "recall": None}
    assert triangle["sizes"]["small"]["map50_95"] is None and triangle["sizes"]["large"]["map50_95"] == 1.0
    flat = size_figures(m)
    assert list(flat) == SIZE_KEYS
    assert flat == {"map50_95_small": 0.0, "recall_small": 0.0, "map50_95_medium": pytest.approx(0.5),
                    "recall_medium": pytest.approx(0.5), "map50_95_large": 1.0, "recall_large": 1.0}
    assert size_figures(triangle)["recall_small"] is None and size_figures(triangle)["recall_large"] == 1.0


@pytest.mark.parametrize("metrics", [{}, {"map50_95": 0.3, "recall": 0.5}, {"sizes": None}])
def test_size_figures_of_results_without_sizes_are_none(metrics):
    assert size_figures(metrics) == {k: None for k in SIZE_KEYS}


def fixture_predictions(model, data, monkeypatch):
    """The synthetic model's ground truth and predictions on its val split, as eval hands them to the metrics."""
    import edgekit.eval.evaluate as evaluate_mod
    from edgekit.eval.dataset import load_dataset
    from edgekit.runtime import open_runner

    seen = {}

    def capture(gts, preds, names, max_det=300):
        seen.update(gts=gts, preds=preds, names=names)
        return detection_metrics(gts, preds, names, max_det=max_det)

    monkeypatch.setattr(evaluate_mod, "detection_metrics", capture)
    with open_runner(str(model), "onnxruntime") as runner:
        result = evaluate_mod.evaluate(runner, load_dataset(data), show_progress=False)
    return seen["gts"], seen["preds"], seen["names"], result


def pycocotools_stats(gts, preds, max_det=300):
    """COCOeval.summarize()'s stats, from COCO-format dicts written here (not with edgekit's conversion)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i, "width": w, "height": h} for i, w, h, *_ in gts]
    anns = [{"id": n, "image_id": i, "category_id": int(c) + 1, "iscrowd": 0,
             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
            for n, (i, (x1, y1, x2, y2), c) in enumerate(
                ((i, b.tolist(), c) for i, _, _, xyxy, cls, _ in gts for b, c in zip(xyxy, cls)), 1)]
    dets = [{"image_id": i, "category_id": int(c) + 1, "score": float(s),
             "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
            for i, xyxy, scores, cls in preds for b, s, c in zip(xyxy, scores, cls)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns,
                        "categories": [{"id": k} for k in sorted({a["category_id"] for a in anns})]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.params.maxDets = [1, 10, max_det]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_sizes_agree_with_pycocotools_on_the_synthetic_model(synthetic_model, monkeypatch):
    data, _, model = synthetic_model
    gts, preds, names, result = fixture_predictions(model, data, monkeypatch)
    m = result["metrics"]
    # the synthetic set's objects are all medium: medium's recall is the overall recall, at the same confidence
    # (the same matches; only the recall curve's interpolation between scores can differ, when a detection of
    # another size that matched nothing is left out of the medium range)
    assert m["sizes"]["medium"]["instances"] == m["instances"] > 0
    assert m["sizes"]["medium"]["recall"] == pytest.approx(m["recall"], abs=0.005)
    assert m["sizes"]["small"]["instances"] == m["sizes"]["large"]["instances"] == 0
    # every size: each image (its labels and the model's boxes alike) scaled by 1/4, 1 or 3
    scale = [(0.25, 1.0, 3.0)[k % 3] for k in range(len(gts))]
    gts = [(i, int(w * f), int(h * f), xyxy * f, c, z) for (i, w, h, xyxy, c, z), f in zip(gts, scale)]
    preds = [(i, xyxy * f, s, c) for (i, xyxy, s, c), f in zip(preds, scale)]
    ours = detection_metrics(gts, preds, names)
    stats = pycocotools_stats(gts, preds)
    assert all(ours["sizes"][s]["instances"] > 5 for s in SIZES)
    assert ours["map50"] == pytest.approx(stats[1], abs=1e-4)  # (stats[0] is at 100 detections, not max_det)
    assert [ours["sizes"][s]["map50_95"] for s in SIZES] == pytest.approx(list(stats[3:6]), abs=1e-4)
    assert ours["sizes"]["small"]["map50_95"] < ours["sizes"]["large"]["map50_95"]  # 1/4 of 160 px: hard
    assert 0 < ours["sizes"]["small"]["recall"] < ours["sizes"]["large"]["recall"] <= 1


# --- edgekit eval on a real ONNX that never finds some classes -------------------------------------------------
def masked(model, tmp_path, keep, name="masked.onnx"):
    """``model`` with the score rows of classes not in ``keep`` multiplied by 0: a model that never finds them."""
    proto = onnx.load(str(model))
    out = proto.graph.output[0]
    dims = [d.dim_value for d in out.type.tensor_type.shape.dim]  # [1, 4 + nc, anchors]
    for node in proto.graph.node:
        node.output[:] = ["raw" if o == out.name else o for o in node.output]
    mask = np.array([1.0] * 4 + [float(c in keep) for c in range(dims[1] - 4)], np.float32).reshape(1, -1, 1)
    proto.graph.initializer.append(numpy_helper.from_array(mask, "mask"))
    proto.graph.node.append(helper.make_node("Mul", ["raw", "mask"], [out.name]))
    path = tmp_path / name
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("keep", [[1, 2], [0, 2], [0, 1], [2], []])
def test_eval_of_a_model_that_never_finds_some_classes(synthetic_model, tmp_path, keep):
    """Each class missed in turn, only one class found, nothing found at all: zeros, a table, files, exit 0."""
    data, _, model = synthetic_model
    js, cs = tmp_path / "e.json", tmp_path / "e.csv"
    result = invoke(["eval", masked(model, tmp_path, keep), "--data", data, "--json", js, "--csv", cs])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "mAP50-95" in result.output and "mAP S" in result.output
    m = json.loads(js.read_text())["results"][0]["metrics"]
    for row in m["per_class"]:
        assert row["name"] in result.output
        figures = [row[k] for k in ("map50_95", "map50", "precision", "recall")] + [
            row["sizes"]["medium"][k] for k in ("map50_95", "map50", "recall")]
        if row["class_id"] in keep:
            assert min(figures) > 0.1, row
        else:
            assert figures == [0.0] * 7, row
            assert row["sizes"]["small"]["map50_95"] is None  # no small objects in the synthetic set
    if not keep:
        assert (m["map50_95"], m["map50"], m["precision"], m["recall"]) == (0.0, 0.0, 0.0, 0.0)
        assert m["sizes"]["medium"] == {"instances": m["instances"], "map50_95": 0.0, "map50": 0.0, "recall": 0.0}
    assert (m["conf_at_max_f1"] is None) == (keep == [])  # no detection at all: no operating point
    rows = list(csv.DictReader(io.StringIO(cs.read_text())))
    assert [r["class"] for r in rows] == ["all", "circle", "square", "triangle"]
    assert set(SIZE_KEYS) <= set(rows[0]) and rows[0]["recall_small"] == "-"
    assert all(rows[1 + c]["map50_95"] == "0.000" for c in range(3) if c not in keep)


def test_eval_table_has_overall_figures_first_then_sizes(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    result = invoke(["eval", model, "--data", data, "--no-save"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "mAP50-95" in line and "class" in line)
    cols = [c.strip() for c in header.strip("┃│ ").replace("┃", "│").split("│")]
    assert cols == ["class", "images", "instances", "P", "R", "mAP50", "mAP50-95", "mAP S", "R S", "mAP M", "mAP L"]
    assert max(len(line) for line in result.output.splitlines() if line.startswith(("┃", "│", "┏"))) <= 100
    assert "small objects" in result.output  # the legend


# --- edgekit compare --data: both models' accuracy and B's change ---------------------------------------------
def test_compare_with_data_reports_accuracy_and_change(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    js = tmp_path / "same.json"
    result = invoke(["compare", model, model, "--data", data, "--frames", 8, "--json", js])
    assert result.exit_code == 0, result.output
    acc = json.loads(js.read_text())["results"][0]["accuracy"]
    assert acc["a"] == acc["b"] and acc["a"]["map50_95"] > 0.1 and acc["split"] == "val"
    assert acc["settings"] == {"conf": 0.001, "iou": 0.7, "max_det": 300, "multi_label": True}
    assert acc["change"]["map50_95"] == acc["change"]["recall_medium"] == 0.0 and acc["change"]["recall_small"] is None
    assert "accuracy on" in result.output and "0.0 pts" in result.output
    assert "no small or large objects" in result.output

    # B never finds circles: its mAP falls by about a third, and the table says so in points
    js, cs = tmp_path / "masked.json", tmp_path / "masked.csv"
    result = invoke(["compare", model, masked(model, tmp_path, [1, 2]), "--data", data, "--frames", 8, "--json", js,
                     "--csv", cs])
    assert result.exit_code == 0, result.output
    acc = json.loads(js.read_text())["results"][0]["accuracy"]
    rows = {r["measure"]: r for r in csv.DictReader(io.StringIO(cs.read_text()))}
    assert rows["match rate"]["value"].endswith("%")
    assert float(rows["mAP50-95"]["value"]) == pytest.approx(100 * acc["change"]["map50_95"], abs=1e-3)
    assert float(rows["mAP50-95"]["a"]) == pytest.approx(acc["a"]["map50_95"], abs=1e-5)
    change = acc["change"]
    assert change["map50_95"] == pytest.approx(acc["b"]["map50_95"] - acc["a"]["map50_95"], abs=1e-5)
    assert change["map50_95"] < -0.05 and change["map50_95_medium"] < -0.05
    assert acc["b"]["per_class"][0]["recall"] == 0.0 and acc["a"]["per_class"][0]["recall"] > 0.1
    assert ("%+.1f pts" % (100 * change["map50_95"])) in result.output


@pytest.mark.parametrize("args", [["--no-accuracy"], ["--source", "synthetic://"]])
def test_compare_without_accuracy(synthetic_model, tmp_path, args):
    data, _, model = synthetic_model
    js = tmp_path / "c.json"
    extra = ["--data", data] if args == ["--no-accuracy"] else []
    result = invoke(["compare", model, model, "--frames", 4, "--json", js] + extra + args)
    assert result.exit_code == 0, result.output
    assert json.loads(js.read_text())["results"][0]["accuracy"] is None and "accuracy on" not in result.output


def test_compare_with_data_still_refuses_models_with_different_classes(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    proto = onnx.load(str(model))  # one more class row (all zeros): 4 classes against 3
    out = proto.graph.output[0]
    for node in proto.graph.node:
        node.output[:] = ["raw" if o == out.name else o for o in node.output]
    anchors = out.type.tensor_type.shape.dim[2].dim_value
    proto.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 1, anchors), np.float32), "extra"))
    proto.graph.node.append(helper.make_node("Concat", ["raw", "extra"], [out.name], axis=1))
    out.type.tensor_type.shape.dim[1].dim_value += 1
    other = tmp_path / "four.onnx"
    onnx.save(proto, str(other))
    assert_user_error(invoke(["compare", model, other, "--data", data, "--no-save"]), "different classes")


def test_make_dataset_small_objects_puts_coco_small_objects_in_both_splits(synthetic_model, tmp_path):
    """--small-objects: a share of the images are 2x2 half-size scenes; eval counts their objects as small."""
    from PIL import Image

    out = tmp_path / "ds"
    result = invoke(["make-dataset", out, "--train", 8, "--val", 8, "--small-objects", 0.5])
    assert result.exit_code == 0, result.output
    sides = {"train": [], "val": []}
    for split in sides:
        for label in sorted((out / "labels" / split).glob("*.txt")):
            w, h = Image.open(out / "images" / split / (label.stem + ".jpg")).size
            for line in label.read_text().splitlines():
                _, x, y, bw, bh = map(float, line.split())
                assert 0 <= x - bw / 2 and x + bw / 2 <= 1 and 0 <= y - bh / 2 and y + bh / 2 <= 1
                sides[split].append(max(bw * w, bh * h))
    for split, s in sides.items():
        assert min(s) < 32 <= max(s), (split, s)  # small ones and medium ones
    plain = invoke(["make-dataset", tmp_path / "plain", "--train", 8, "--val", 8])
    assert plain.exit_code == 0
    js = tmp_path / "e.json"
    _, _, model = synthetic_model
    assert invoke(["eval", model, "--data", out / "data.yaml", "--json", js]).exit_code == 0
    sizes = json.loads(js.read_text())["results"][0]["metrics"]["sizes"]
    assert sizes["small"]["instances"] > 0 and sizes["medium"]["instances"] > 0
    # the images not replaced are exactly those of the plain set of the same seed
    assert (out / "images" / "val" / "00007.jpg").read_bytes() == (tmp_path / "plain" / "images" / "val" /
                                                                  "00007.jpg").read_bytes()


def test_make_dataset_refuses_a_folder_that_holds_one_and_eval_refuses_images_with_a_yaml(synthetic_model, tmp_path):
    """Writing a dataset over another would mix their images; an image folder given with a data.yaml would be
    silently ignored: both are one-line errors."""
    out = tmp_path / "ds"
    assert invoke(["make-dataset", out, "--train", 2, "--val", 2]).exit_code == 0
    before = sorted(p.name for p in (out / "images" / "val").iterdir())
    assert_user_error(invoke(["make-dataset", out, "--train", 1, "--val", 1]), "already holds a dataset")
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == before
    _, _, model = synthetic_model
    assert_user_error(invoke(["eval", model, "--data", out / "data.yaml", "--images", out / "images" / "val",
                              "--no-save"]), "goes with a COCO json")
