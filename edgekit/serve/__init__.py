"""``edgekit serve``: the model behind HTTP on the box, and its client side (the remote bench).

``app`` (Starlette routes), ``worker`` (the one inference thread, dynamic batching), ``images`` (request bodies
to frames, with size caps), ``metrics`` (Prometheus), ``server`` (uvicorn, SIGTERM drain); ``client`` and
``remote_report`` measure a running server as an application sees it.
"""
