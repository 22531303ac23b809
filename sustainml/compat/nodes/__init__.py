"""The six upstream node classes, one module each as in ``sustainml_py.nodes``:
``from sustainml.compat.nodes.HardwareConstraintsNode import HardwareConstraintsNode``."""
