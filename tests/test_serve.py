

def test_requests_past_timeout_answer_504(yolov8n_onnx):
    server = Server(yolov8n_onnx, "--timeout", "0.03")
    try:
        statuses = asyncio.run(_flood(server.url, _jpeg((360, 640)), 16, 16, lambda n: None))
        assert set(statuses) <= {200, 504} and statuses.count(504) > 0, statuses
        assert server.metrics()["edgekit_rejections_total[('reason', 'timeout')]"] == statuses.count(504)
    finally:
        code, out = server.stop()
    assert code == 0 and "Traceback" not in out, out
