"""Inference with a trained run: the Segmenter (a run as maps, instances and cell types), the sliding window,
dihedral test-time augmentation, prediction on image files and their export (TIFF maps, overlay, GeoJSON)."""
