"""edgekit eval and compare: agreement with ultralytics val, COCO json input, bad datasets, perturbed models."""

import json
import shutil

import numpy as np
import onnx
import pytest
from helpers import assert_user_error, invoke
from onnx import numpy_helper

from edgekit.eval.dataset import label_path, load_dataset


def test_eval_agrees_with_ultralytics_val(synthetic_model, tmp_path):
    from ultralytics import YOLO

    data, _, model = synthetic_model
    js, cs = tmp_path / "eval.json", tmp_path / "eval.csv"
    result = invoke(["eval", model, "--data", data, "--json", js, "--csv", cs])
    assert result.exit_code == 0, result.output
    ours = json.loads(js.read_text())["results"][0]["metrics"]
    theirs = YOLO(str(model)).val(data=str(data), imgsz=160, batch=1, conf=0.001, iou=0.7, device="cpu",
                                  plots=False, verbose=False, workers=0).box
    assert ours["map50_95"] > 0.1, "the fixture model should have learned something"
    assert abs(ours["map50_95"] - theirs.map) < 0.01
    assert abs(ours["map50"] - theirs.map50) < 0.01
    assert abs(ours["recall"] - theirs.mr) < 0.03 and abs(ours["precision"] - theirs.mp) < 0.03
    assert [c["name"] for c in ours["per_class"]] == ["circle", "square", "triangle"]
    assert "mAP50-95" in result.output and "triangle" in result.output
    assert cs.read_text().splitlines()[1].split(",")[2] == "all"


def to_coco(data_yaml, out):
    """The YOLO-format val split as a COCO json (absolute xywh boxes, category ids 1..3)."""
    import cv2

    ds = load_dataset(data_yaml)
    images, anns = [], []
    for i, s in enumerate(ds.samples, 1):
        h, w = cv2.imread(str(s.image)).shape[:2]
        images.append({"id": i, "file_name": s.image.name, "width": w, "height": h})
        for box, c in zip(s.boxes_xyxy(w, h), s.classes):
            x1, y1, x2, y2 = box.tolist()
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    cats = [{"id": k + 1, "name": v} for k, v in ds.names.items()]
    out.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ds.samples[0].image.parent


def test_coco_json_gives_the_same_metrics(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    images = to_coco(data, tmp_path / "val.json")
    yolo_js, coco_js = tmp_path / "a.json", tmp_path / "b.json"
    assert invoke(["eval", model, "--data", data, "--json", yolo_js]).exit_code == 0
    result = invoke(["eval", model, "--data", tmp_path / "val.json", "--images", images, "--json", coco_js])
    assert result.exit_code == 0, result.output
    a = json.loads(yolo_js.read_text())["results"][0]["metrics"]
    b = json.loads(coco_js.read_text())["results"][0]["metrics"]
    assert a["map50_95"] == pytest.approx(b["map50_95"], abs=1e-4)
    assert a["recall"] == pytest.approx(b["recall"], abs=1e-3)


def copy_dataset(data_yaml, tmp_path):
    src = data_yaml.parent
    dst = tmp_path / "ds"
    shutil.copytree(src, dst)
    (dst / "data.yaml").write_text(data_yaml.read_text().replace(str(src), str(dst)))
    return dst / "data.yaml"


def test_bad_labels_and_unreadable_images_are_skipped_and_counted(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    data = copy_dataset(data, tmp_path)
    images = sorted((data.parent / "images" / "val").iterdir())
    label_path(images[0]).write_text("7 0.5 0.5 0.1 0.1\n")  # class 7 of 3
    label_path(images[1]).write_text("1 0.5 oops 0.1 0.1\n")
    images[2].write_bytes(b"not a jpeg")
    js = tmp_path / "e.json"
    result = invoke(["eval", model, "--data", data, "--json", js])
    assert result.exit_code == 0, result.output
    r = json.loads(js.read_text())["results"][0]
    assert r["problems"] == {"bad_labels": 2, "unreadable_images": 1}
    assert r["metrics"]["images"] == len(images) - 3
    assert "out of range" in result.output and "2 bad labels" in result.output
    # each kind with its own count and its own first example (a label error is never quoted as an image error)
    lines = {line.split(" in ")[0]: line for line in result.output.splitlines() if line.startswith("warning:")}
    assert "labels" in lines["warning: 2 bad labels"] and "out of range" in lines["warning: 2 bad labels"]
    unreadable = lines["warning: 1 unreadable images"]
    assert images[2].name in unreadable and "cannot decode" in unreadable and "out of range" not in unreadable
    assert r["problem_examples"]["unreadable_images"].startswith(str(images[2]))


@pytest.mark.parametrize("case, fragment", [
    ("missing", "not found"), ("no-names", "needs 'val:' (images) and 'names:'"), ("no-images", "no images found"),
    ("coco-without-images", "needs --images"), ("not-coco", "not a COCO annotation file"),
])
def test_bad_datasets(yolov8n_onnx, tmp_path, case, fragment):
    path = tmp_path / ("data.json" if "coco" in case else "data.yaml")
    if case == "no-names":
        path.write_text("val: images\n")
    elif case == "no-images":
        (tmp_path / "empty").mkdir()
        path.write_text("path: %s\nval: empty\nnames: [a]\n" % tmp_path)
    elif case == "coco-without-images":
        path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    elif case == "not-coco":
        path.write_text("[1, 2]")
    assert_user_error(invoke(["eval", yolov8n_onnx, "--data", path, "--no-save"]), fragment)


def perturbed(model, tmp_path, scale=1.3):
    proto = onnx.load(str(model))
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.ndim == 4 and arr.shape[0] >= 16:  # the first big conv
            init.CopyFrom(numpy_helper.from_array((arr * scale).astype(arr.dtype), init.name))
            break
    out = tmp_path / "perturbed.onnx"
    onnx.save(proto, str(out))
    return out


def test_compare_identical_and_perturbed(synthetic_model, tmp_path):
    data, _, model = synthetic_model
    same = tmp_path / "same.json"
    result = invoke(["compare", model, model, "--data", data, "--frames", 12, "--json", same])
    assert result.exit_code == 0, result.output
    r = json.loads(same.read_text())["results"][0]
    assert r["identical"] and r["raw"]["max_abs"] == 0 and r["raw"]["min_cosine"] == pytest.approx(1.0)
    assert r["detections"]["a"] == r["detections"]["b"] > 0 and r["detections"]["match_rate"] == 1.0
    assert r["detections"]["class_agreement"] == 1.0 and r["detections"]["mean_iou"] == pytest.approx(1.0)

    other = tmp_path / "diff.json"
    result = invoke(["compare", model, perturbed(model, tmp_path), "--data", data, "--frames", 12, "--json", other])
    assert result.exit_code == 0, result.output
    r = json.loads(other.read_text())["results"][0]
    assert not r["identical"] and r["raw"]["max_abs"] > 0.01
    assert r["detections"]["match_rate"] < 1.0 or r["detections"]["mean_iou"] < 0.99
    assert "identical outputs" not in result.output


def test_compare_refuses_different_input_sizes(synthetic_model, yolov8n_onnx):
    _, _, model = synthetic_model
    assert_user_error(invoke(["compare", model, yolov8n_onnx, "--no-save"]), "same --imgsz")


def test_box_iou_and_greedy_match():
    from edgekit.eval.compare import box_iou, match
    from edgekit.vision import Detections

    a = Detections(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.ones(2, np.float32), np.array([0, 1]))
    b = Detections(np.array([[21, 21, 31, 31], [0, 0, 10, 5]], np.float32), np.ones(2, np.float32), np.array([1, 0]))
    iou = box_iou(a.xyxy, b.xyxy)
    assert iou[0, 1] == pytest.approx(0.5) and iou[1, 0] == pytest.approx(81 / 119)
    assert [(i, j) for i, j, _ in match(a, b, 0.5)] == [(1, 0), (0, 1)]
