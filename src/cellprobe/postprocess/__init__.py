"""Post-processing: decoder maps → instances (watershed) and one cell type per instance (vote).

:func:`instances_from_maps` turns the semantic and distance maps of :mod:`cellprobe.data.targets` into
instances, :func:`instances_from_hv` does the same for HoVer-Net's maps (the alternative target),
:func:`assign_types` votes a class per instance, and :func:`tune_params` fits :class:`PostprocessParams` on a
validation set.
"""

from cellprobe.postprocess.hover import instances_from_hv
from cellprobe.postprocess.maps import contour_strength, instances_from_maps
from cellprobe.postprocess.param_search import MapPrediction, TuneResult, tune_params
from cellprobe.postprocess.params import DEFAULT_GRID, HoverParams, PostprocessParams
from cellprobe.postprocess.types import assign_types

__all__ = [
    "DEFAULT_GRID",
    "HoverParams",
    "MapPrediction",
    "PostprocessParams",
    "TuneResult",
    "assign_types",
    "contour_strength",
    "instances_from_hv",
    "instances_from_maps",
    "tune_params",
]
