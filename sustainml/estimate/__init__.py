"""Estimators shared by the stage logic, one module (or package) each: ``roofline`` (latency on a
device; its device model in ``efficiency``, the local-cpu calibration in ``calibration``),
``transformer`` (analytic costs from a transformer's shape), ``serving`` (energy and latency per
answer of generative models), ``power``, ``measure`` (onnxruntime on this CPU), ``latency_eval``
(``sustainml eval latency``), ``carbon`` and ``training`` (CARBON_FOOTPRINT); what several stages
share: ``devices`` and ``model_files`` (the devices and ONNX files estimates are made for),
``hardware_names`` and ``hardware_choice`` (hardware as people write it, read from a user input).

Import the module you need (``from sustainml.estimate import carbon``). Nothing is re-exported
here on purpose: ``roofline`` and ``measure`` load numpy and onnx, which the CARBON_FOOTPRINT
worker never needs (its idle memory would grow by ~20 MB for nothing)."""
