"""Estimators shared by the stage logic: roofline latency, device power, measured latency, the
latency evaluation of ``sustainml eval latency`` (and, from CARBON_FOOTPRINT, carbon and training)."""

from __future__ import annotations

from sustainml.estimate.carbon import GridIntensity, carbon_kg, grid_intensity, hardware_options
from sustainml.estimate.latency_eval import LatencyReport, ModelLatency, evaluate
from sustainml.estimate.measure import Measurement, MeasurementError, measure_latency
from sustainml.estimate.power import (
    DEFAULT_UTILISATION,
    UTILISATION_SOURCE,
    default_utilisation,
    device_power_w,
)
from sustainml.estimate.roofline import (
    EFFICIENCY,
    Efficiency,
    LocalCalibration,
    RooflineEstimate,
    efficiency_for,
    estimate,
    quick_estimate,
)
from sustainml.estimate.training import Assumption, TrainingEstimate, estimate_training

__all__ = [
    "DEFAULT_UTILISATION",
    "EFFICIENCY",
    "UTILISATION_SOURCE",
    "Assumption",
    "Efficiency",
    "GridIntensity",
    "LatencyReport",
    "LocalCalibration",
    "Measurement",
    "MeasurementError",
    "ModelLatency",
    "RooflineEstimate",
    "TrainingEstimate",
    "carbon_kg",
    "default_utilisation",
    "device_power_w",
    "efficiency_for",
    "estimate",
    "estimate_training",
    "evaluate",
    "grid_intensity",
    "hardware_options",
    "measure_latency",
    "quick_estimate",
]
