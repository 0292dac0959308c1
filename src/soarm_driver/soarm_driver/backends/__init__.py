"""Robot backends behind the driver: sim (MuJoCo), feetech (real SO-101), mock.

`make_backend(name, params)` imports a backend only when it is chosen (sim pulls MuJoCo,
feetech LeRobot); the contract every backend implements is `base.RobotBackend`.
"""

from __future__ import annotations

import importlib

#: Backend name -> "module:class".
BACKENDS = {
    "sim": "soarm_driver.sim.backend:SimBackend",
    "mock": "soarm_driver.backends.mock:MockBackend",
    "feetech": "soarm_driver.backends.feetech:FeetechBackend",
}


def make_backend(name: str, params: dict):
    """Build the backend `name` from `params`; ValueError naming the choices when it is unknown
    or cannot be imported."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}': choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    try:
        backend_cls = getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ValueError(f"backend '{name}' is not available ({module}): {e}") from e
    return backend_cls(params)
