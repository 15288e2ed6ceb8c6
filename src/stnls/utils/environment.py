"""What this installation runs on: versions, devices and the backend of every op."""

from __future__ import annotations

import importlib
import platform

import torch


def _version(module: str) -> str:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"
    except Exception as error:  # an installed package that fails to import
        return f"unusable ({type(error).__name__}: {error})"


def versions() -> dict[str, str]:
    """Versions of stnls, torch, triton and Python."""
    import stnls

    return {"stnls": stnls.__version__, "torch": torch.__version__, "triton": _version("triton"),
            "python": platform.python_version()}


def devices() -> list[torch.device]:
    """The CPU and every visible CUDA device."""
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return found


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def op_names() -> list[str]:
    """Every op a backend implements (the reference backend has them all)."""
    from ..backends import reference

    return list(reference.__all__)


def op_backends(device: torch.device) -> dict[str, str]:
    """Backend each op runs on tensors of ``device`` (see :func:`stnls.backends.describe`)."""
    from .. import backends

    return {op: backends.describe(device, op) for op in op_names()}
