"""Host-side tools (workstation, needs torch/ultralytics): export, later prune and quantize.

Host code may import edgekit.runtime/vision; device code never imports this package.
"""
