"""Accuracy next to speed: datasets, mAP (pycocotools), model comparison."""
