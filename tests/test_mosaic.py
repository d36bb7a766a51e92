"""Several live streams at once: the tiled mosaic (window, /mosaic.mjpg) and the multi-stream web view."""

import json
import math
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from edgekit.video.mosaic import BACKGROUND, GAP, Mosaic, grid, tile
from edgekit.video.web import WebStream

COLORS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0), (128, 0, 255),
          (0, 128, 255), (255, 128, 0)]


def solid(h, w, color):
    return np.full((h, w, 3), color, np.uint8)


def cell_height(cell_w, h=9, w=16):
    """A cell's height (gap included) for cells ``cell_w`` wide whose inside has the aspect ``w:h``."""
    return int(round((cell_w - GAP) * h / w)) + GAP


def cells(image, cols, rows):
    """The inner area of each cell of a tiled image, row by row."""
    ch, cw = image.shape[0] // rows, image.shape[1] // cols
    return [image[r * ch:(r + 1) * ch - GAP, c * cw:(c + 1) * cw - GAP] for r in range(rows) for c in range(cols)]


@pytest.mark.parametrize("n, expected", [(1, (1, 1)), (2, (2, 1)), (3, (2, 2)), (4, (2, 2)), (5, (3, 2)),
                                         (9, (3, 3)), (10, (4, 3))])
def test_grid_is_near_square(n, expected):
    assert grid(n) == expected


def test_grid_with_fixed_columns():
    assert grid(5, columns=1) == (1, 5)
    assert grid(3, columns=8) == (3, 1)  # no more columns than cells


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9])
def test_tile_geometry(n):
    sizes = [(720, 1280), (480, 640), (1080, 1920), (240, 320), (600, 800), (100, 100), (360, 640), (90, 160),
             (1000, 500)]
    frames = [solid(h, w, COLORS[k]) for k, (h, w) in enumerate(sizes[:n])]
    out = tile(frames, width=1280)
    cols, rows = grid(n)
    cw = 1280 // cols
    ch = cell_height(cw)  # the first frame's aspect
    assert out.dtype == np.uint8 and out.shape == (rows * ch, cols * cw, 3)
    for k, cell in enumerate(cells(out, cols, rows)):
        centre = tuple(int(v) for v in cell[cell.shape[0] // 2, cell.shape[1] // 2])
        assert centre == (COLORS[k] if k < n else (BACKGROUND,) * 3)
    for k in range(n):  # the frames themselves are not touched
        assert (frames[k] == COLORS[k]).all()


@pytest.mark.parametrize("h, w", [(480, 640), (1000, 500), (100, 1000), (720, 1280)])
def test_frames_keep_their_aspect_letterboxed(h, w):
    first = solid(720, 1280, (10, 10, 10))  # sets the cell's aspect: 16:9
    out = tile([first, solid(h, w, (0, 0, 255))], width=1284)  # cells 642 x 362 (inner 640 x 360)
    cell = cells(out, 2, 1)[1]
    red = np.argwhere((cell == (0, 0, 255)).all(axis=2))
    (y0, x0), (y1, x1) = red.min(axis=0), red.max(axis=0)
    box_h, box_w = y1 - y0 + 1, x1 - x0 + 1
    assert box_w == 640 or box_h == 360  # fills one side of the cell
    assert box_w / box_h == pytest.approx(w / h, rel=0.02)  # aspect kept
    assert abs(x0 - (640 - x1 - 1)) <= 1 and abs(y0 - (360 - y1 - 1)) <= 1  # centred
    bars = np.ones(cell.shape[:2], bool)
    bars[y0:y1 + 1, x0:x1 + 1] = False
    assert (cell[bars] == BACKGROUND).all()  # the bars are dark


def test_missing_frames_are_dark_cells_with_their_label():
    out = tile([solid(90, 160, COLORS[0]), None, None], width=640, labels=["cam0", "rtsp://cam1", ""])
    c0, c1, c2, c3 = cells(out, 2, 2)
    for cell in (c1, c2, c3):
        assert (np.median(cell.reshape(-1, 3), axis=0) == BACKGROUND).all()
    assert (c1[:40, :150] > 180).any()  # the label: white text on a black box in the top left corner
    assert (c1[:40, :150] == 0).any()
    assert (c2 == BACKGROUND).all()  # an empty label draws nothing
    assert (c3 == BACKGROUND).all()  # the cell past the last stream


def test_labels_are_drawn_inside_their_cell_only():
    frames = [solid(90, 160, (0, 0, 0)) for _ in range(4)]
    out = tile(frames, width=640, labels=["a very long stream name that cannot fit in one cell" * 3, "", "x", ""])
    c0, c1, c2, c3 = cells(out, 2, 2)
    assert (c0 > 180).any() and (c2 > 180).any()  # white text (anti-aliased)
    assert not (c1 > 180).any() and not (c3 > 180).any()


def test_grey_and_bgra_frames_are_taken():
    out = tile([np.full((90, 160), 200, np.uint8), np.full((90, 160, 4), 100, np.uint8)], width=640)
    c0, c1 = cells(out, 2, 1)
    assert (c0 == 200).all() and (c1 == 100).all()


def test_output_buffer_is_reused_when_the_shape_fits():
    frames = [solid(90, 160, COLORS[0]), solid(90, 160, COLORS[1])]
    out = tile(frames, width=640)
    again = tile([frames[1], None], width=640, out=out)
    assert again is out
    assert tuple(int(v) for v in cells(out, 2, 1)[0][40, 40]) == COLORS[1]  # drawn over, not stale
    assert (cells(out, 2, 1)[1] == BACKGROUND).all()
    other = tile(frames, width=320, out=out)  # another size: a new buffer
    assert other is not out and other.shape[1] == 320


def test_mosaic_keeps_the_newest_frame_per_stream():
    mosaic = Mosaic(3, width=640, labels=["a", "b", "c"])
    first = mosaic.image()
    assert first.shape == (2 * cell_height(320), 640, 3)  # no frame yet: 16:9 cells, all dark with labels
    mosaic.update(2, solid(90, 160, COLORS[2]))
    mosaic.update(0, solid(90, 160, COLORS[0]))
    image = mosaic.image(labels=["", "", ""])
    assert image is first  # one buffer, reused
    c0, c1, c2, _ = cells(image, 2, 2)
    assert (c0 == COLORS[0]).all() and (c1 == BACKGROUND).all() and (c2 == COLORS[2]).all()
    mosaic.update(0, solid(90, 160, COLORS[5]))
    assert (cells(mosaic.image(labels=["", "", ""]), 2, 2)[0] == COLORS[5]).all()
    with pytest.raises(ValueError):
        Mosaic(0)


# --- the multi-stream web view ----------------------------------------------------------------------------

NAMES = ["cam0", "rtsp://10.0.0.7:554/live", "file:///clips/gate.mp4"]
SIZES = [(48, 64), (60, 80), (36, 100)]


def get(url, timeout=5):
    return urllib.request.urlopen(url, timeout=timeout)


def read_part(stream):
    """One JPEG part of an MJPEG response, decoded."""
    assert stream.readline() == b"--frame\r\n"
    headers = {}
    line = stream.readline()
    while line not in (b"\r\n", b""):
        key, value = line.decode().split(":", 1)
        headers[key.strip().lower()] = value.strip()
        line = stream.readline()
    assert headers["content-type"] == "image/jpeg"
    body = stream.read(int(headers["content-length"]))
    assert stream.readline() == b"\r\n"
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture()
def web3():
    web = WebStream(0, "127.0.0.1", streams=NAMES)
    yield web, "http://127.0.0.1:%d" % web.port
    web.close()


def feed(web, sizes, stop, period=0.01):
    """Writes every stream's frame (grey level = frame number) until ``stop`` is set."""
    k = 0
    while not stop.is_set():
        for i, (h, w) in enumerate(sizes):
            web.write_stream(i, np.full((h, w, 3), (k * 7 + i * 40) % 255, np.uint8))
        k += 1
        time.sleep(period)


def multi_stats(n):
    return {"label": "yolov8n fp16", "fps": 88.5, "frames": 900, "e2e": 31.2, "stages": {"infer": 9.5, "nms": 1.25},
            "batch": {"size": n, "padded": 0, "mean_frames": n - 0.4},
            "streams": [{"index": i, "name": NAMES[i % 3], "fps": 29.5, "e2e_p50": 30.1, "e2e_p99": 55.0,
                         "frames": 300, "dropped": i, "reconnects": 0, "stalls": 0, "detections": 4,
                         "status": ["live", "stalled", "failed", "ended"][i % 4],
                         "counts": {"person": 3, "car": 1} if i == 0 else None, "tracks": 5 if i == 0 else None}
                        for i in range(n)]}


def test_multi_stream_stats_round_trip(web3):
    web, base = web3
    stats = multi_stats(3)
    web.update_stats(stats)
    assert json.loads(get(base + "/stats.json").read()) == stats
    stats["streams"][1]["e2e_p99"] = float("nan")  # a stream with no frame yet: null, still valid JSON
    web.update_stats(stats)
    assert json.loads(get(base + "/stats.json").read())["streams"][1]["e2e_p99"] is None


def test_each_stream_is_served_at_its_own_size(web3):
    web, base = web3
    for i, (h, w) in enumerate(SIZES):
        web.write_stream(i, np.full((h, w, 3), 50 * i, np.uint8))
    stream = get(base + "/stream/1.mjpg")
    assert stream.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    assert read_part(stream).shape == (60, 80, 3)
    web.write_stream(1, np.full((60, 80, 3), 200, np.uint8))
    web.write_stream(0, np.zeros((48, 64, 3), np.uint8))  # another stream's frame: not on this one
    part = read_part(stream)
    assert part.shape == (60, 80, 3) and abs(int(part.mean()) - 200) <= 2
    stream.close()
    assert read_part(get(base + "/stream.mjpg")).shape == (48, 64, 3)  # stream 0, as with one stream
    snap = get(base + "/snapshot.jpg?stream=2").read()
    assert cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR).shape == (36, 100, 3)
    snap = get(base + "/snapshot.jpg").read()
    assert cv2.imdecode(np.frombuffer(snap, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)


@pytest.mark.parametrize("path", ["/stream/3.mjpg", "/stream/-1.mjpg", "/stream/x.mjpg", "/snapshot.jpg?stream=7",
                                  "/snapshot.jpg?stream=one", "/nothing"])
def test_bad_stream_index_is_a_json_404(web3, path):
    _, base = web3
    with pytest.raises(urllib.error.HTTPError) as info:
        get(base + path)
    assert info.value.code == 404 and info.value.headers["Content-Type"] == "application/json"
    error = json.loads(info.value.read())["error"]
    assert ("this run has 3 streams (0 to 2)" in error) if path != "/nothing" else ("not found" in error)


def test_page_is_a_mosaic_of_the_streams(web3):
    web, base = web3
    page = get(base + "/").read().decode()
    assert 'id="tiles"' in page and "grid-template-columns" in page and "/stream/" in page
    config = json.loads(page.split("const C = ", 1)[1].split(";\n", 1)[0])
    assert config["names"] == NAMES and config["columns"] == 2 and config["mosaic"] is False
    assert "http://" not in page.replace("http://www.w3.org", "")  # no external assets
    request = urllib.request.Request(base + "/stream/1.mjpg", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        get(request)
    assert info.value.code == 405 and info.value.headers["Allow"] == "GET, HEAD"


def test_names_cannot_break_out_of_the_page():
    web = WebStream(0, "127.0.0.1", streams=["</script><script>alert(1)</script>", "b"])
    try:
        page = get("http://127.0.0.1:%d/" % web.port).read().decode()
        assert "<script>alert" not in page and page.count("</script>") == 1
    finally:
        web.close()


def test_streams_are_encoded_only_while_watched(web3):
    web, base = web3
    for k in range(20):
        for i, (h, w) in enumerate(SIZES):
            web.write_stream(i, np.full((h, w, 3), k, np.uint8))
    assert web.encodes == 0  # nobody watches: frames are only kept
    stream = get(base + "/stream/1.mjpg")
    read_part(stream)
    for k in range(3):
        web.write_stream(1, np.full((60, 80, 3), k, np.uint8))
        read_part(stream)
    assert web.stream_encodes(1) == 4 and web.encodes == 4  # only the watched stream, once per frame taken
    stream.close()
    assert wait_for(lambda: web.clients == 0)
    for k in range(20):
        for i, (h, w) in enumerate(SIZES):
            web.write_stream(i, np.full((h, w, 3), k, np.uint8))
    assert web.encodes == 4


def test_viewers_of_one_stream_share_one_encode(web3):
    web, base = web3
    web.write_stream(2, np.zeros((36, 100, 3), np.uint8))
    viewers = [get(base + "/stream/2.mjpg") for _ in range(3)]
    for v in viewers:
        assert read_part(v).shape == (36, 100, 3)
    assert web.stream_encodes(2) == 1
    for v in viewers:
        v.close()


def test_one_stream_is_as_before():
    web = WebStream(0, "127.0.0.1")
    base = "http://127.0.0.1:%d" % web.port
    try:
        page = get(base + "/").read().decode()
        assert 'id="stream" src="/stream.mjpg"' in page and "tiles" not in page
        web.write(np.zeros((48, 64, 3), np.uint8))
        assert read_part(get(base + "/stream/0.mjpg")).shape == (48, 64, 3)
        with pytest.raises(urllib.error.HTTPError) as info:
            get(base + "/stream/1.mjpg")
        assert "this run has 1 stream (0 to 0)" in json.loads(info.value.read())["error"]
    finally:
        web.close()


def test_many_streams_share_one_mosaic_stream():
    n = 6
    sizes = [(90, 160), (120, 160), (90, 160), (160, 90), (90, 160), (45, 80)]
    web = WebStream(0, "127.0.0.1", streams=["cam%d" % i for i in range(n)])
    base = "http://127.0.0.1:%d" % web.port
    stop = threading.Event()
    try:
        config = json.loads(get(base + "/").read().decode().split("const C = ", 1)[1].split(";\n", 1)[0])
        assert config["mosaic"] is True and (config["mosaicColumns"], config["mosaicRows"]) == (3, 2)
        for i, (h, w) in enumerate(sizes):
            web.write_stream(i, solid(h, w, COLORS[i]))
        assert web.encodes == 0
        stream = get(base + "/mosaic.mjpg")
        image = read_part(stream)
        assert image.shape == (2 * cell_height(426), 3 * 426, 3)  # 1280 // 3 wide cells, the first frame's 16:9
        for k, cell in enumerate(cells(image, 3, 2)):
            assert np.abs(cell[cell.shape[0] // 2, cell.shape[1] // 2].astype(int) - COLORS[k]).max() < 40
        assert web.mosaic_encodes == 1 and web.encodes == 1  # the streams themselves are not encoded
        thread = threading.Thread(target=feed, args=(web, sizes, stop, 0.002), daemon=True)
        thread.start()  # ~500 frames a second per stream: the mosaic keeps to mosaic_fps
        start = time.time()
        parts = 0
        while time.time() - start < 1.0:
            read_part(stream)
            parts += 1
        assert 5 <= parts <= web.mosaic_fps + 3 and web.mosaic_encodes <= web.mosaic_fps + 4
        stream.close()
    finally:
        stop.set()
        web.close()


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not chromium() and not os.environ.get("CI"), reason="Chromium not installed (apt install chromium)")
@pytest.mark.parametrize("n", [3, 6])
def test_mosaic_page_in_headless_chromium(n):
    from playwright.sync_api import sync_playwright

    sizes = [(120, 160)] * n
    web = WebStream(0, "127.0.0.1", streams=["cam%d" % i for i in range(n)])
    web.update_stats(multi_stats(n))
    stop = threading.Event()
    thread = threading.Thread(target=feed, args=(web, sizes, stop, 0.03), daemon=True)
    thread.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto("http://127.0.0.1:%d/" % web.port)
            page.wait_for_function("document.querySelector('#tile-0 .st').textContent === 'live'", timeout=30000)
            assert page.text_content("#tile-1 .st") == "stalled"
            assert page.text_content("#tile-0 .nums").startswith("29.5 FPS \u00b7 e2e 30.1 / 55 ms (p50/p99)")
            assert page.text_content("#tile-0 .counts") == "detections 4 \u00b7 person 3 \u00b7 car 1 \u00b7 tracks 5"
            assert page.text_content("#bsize") == str(n) and page.text_content("#fps") == "88.5"
            if n <= 4:  # one MJPEG per tile
                page.wait_for_function("[...document.querySelectorAll('img.view')].every(i => i.naturalWidth == 160)",
                                       timeout=30000)
            else:  # tiles cut from /mosaic.mjpg onto canvases
                assert page.evaluate("document.querySelectorAll('img.view').length") == 0
                page.wait_for_function("document.getElementById('feed').naturalWidth > 0", timeout=30000)
                page.wait_for_function("""(() => {
                    const c = document.querySelector('#tile-%d canvas');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    return d[(Math.floor(c.height / 2) * c.width + Math.floor(c.width / 2)) * 4] > 0; })()""" % (n - 1),
                    timeout=30000)
                sample = "(() => { const c = document.querySelector('#tile-0 canvas'); " \
                         "return c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data[0]; })()"
                first = page.evaluate(sample)
                assert page.wait_for_function("%s !== %d" % (sample, first), timeout=10000)  # the tiles move
            columns = "new Set([...document.querySelectorAll('#tiles figure')].map(f => f.offsetLeft)).size"
            assert page.evaluate(columns) == math.ceil(math.sqrt(n))
            page.set_viewport_size({"width": 400, "height": 800})  # a phone: one column
            assert page.evaluate(columns) == 1
            browser.close()
    finally:
        stop.set()
        thread.join()
        web.close()
