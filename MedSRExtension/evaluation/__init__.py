"""Measuring quality: image and label metrics, segmentation, comparisons, held-out evaluation, benchmarks."""
