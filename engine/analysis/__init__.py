"""Analysis of minima and paths: Hessian curvature (Lanczos on Hessian-vector
products), 2-D slices of the loss, and path ensembles."""

from engine.analysis.ensemble import PathEnsemble, Predictor, accuracy, path_ensemble
from engine.analysis.hessian import (
    HessianSpectrum,
    dense_hessian,
    hessian_spectrum,
    hessian_vector_product,
    network_loss,
    path_curvatures,
    path_tangents,
    surface_loss,
    tangent_curvature,
)
from engine.analysis.slice import Slice, SlicePlane, coordinate_plane, evaluate_slice, grid_around, plane_through

__all__ = [
    "HessianSpectrum", "PathEnsemble", "Predictor", "Slice", "SlicePlane", "accuracy", "coordinate_plane",
    "dense_hessian", "evaluate_slice", "grid_around", "hessian_spectrum", "hessian_vector_product",
    "network_loss", "path_curvatures", "path_ensemble", "path_tangents", "plane_through", "surface_loss",
    "tangent_curvature",
]
