"""Argument checks shared by every public function.

Each helper raises ``ValueError`` (bad value) or ``TypeError`` (bad type) with
a message that names the argument and says what was expected.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def check_int(name: str, value, minimum: int | None = None) -> int:
    """Return ``value`` as an int; it must be integral and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_positive_real(name: str, value) -> float:
    """Return ``value`` as a float; it must be a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_choice(name: str, value, choices) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_tensor(name: str, value, ndims: tuple[int, ...], floating: bool = True) -> Tensor:
    """``value`` must be a tensor with one of the given numbers of dimensions."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() not in ndims:
        expected = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {expected} dimensions, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    return value


def check_same(names: tuple[str, str], a: Tensor, b: Tensor, what: str = "device,dtype") -> None:
    """Two tensors must share device and/or dtype."""
    if "device" in what and a.device != b.device:
        raise ValueError(f"{names[0]} and {names[1]} must be on the same device, "
                         f"got {a.device} and {b.device}")
    if "dtype" in what and a.dtype != b.dtype:
        raise TypeError(f"{names[0]} and {names[1]} must have the same dtype, "
                        f"got {a.dtype} and {b.dtype}")


def finite_probe(value: Tensor) -> Tensor:
    """The float32 sum ``[1]`` of ``value`` (non-empty): NaN or infinite if ``value`` holds a
    NaN or an infinity (finite otherwise, unless the sum overflows float32).
    :func:`check_finite` adds it times 0 to a result on a GPU; the Triton kernels read it
    as they write their results (the search's distances, the aggregation's last write),
    which are then NaN everywhere."""
    return value.sum(dtype=torch.float32).reshape(1)


def checked_probe(value: Tensor, check: bool) -> Tensor | None:
    """With ``check``, the :func:`finite_probe` of a non-empty floating-point ``value`` for
    a Triton kernel to read as it writes its result (NaN everywhere when ``value`` is not
    finite, as :func:`check_finite` does on a GPU, without its pass over the result); else
    None (integers are always finite)."""
    if check and value.is_floating_point() and value.numel() > 0:
        return finite_probe(value)
    return None


def check_finite(name: str, value: Tensor, result: Tensor | None = None) -> None:
    """Refuse NaN or infinite values (they would be used as memory offsets).

    On the CPU (and without ``result``): ``ValueError``, from one reduction (``aminmax``
    propagates NaN, and an infinity is an extreme) copied to the host. On a GPU, where
    that copy would make the host wait for the device at every call, ``result`` (the
    op's floating-point output, made by kernels that never index memory with such
    values) becomes NaN everywhere instead, with no wait: it gets
    ``0 * sum(value)`` added, which is 0 for finite values and NaN otherwise."""
    if value.numel() == 0:
        return
    if result is not None and result.is_cuda:
        result.add_(finite_probe(value), alpha=0)
        return
    if not all(math.isfinite(extreme) for extreme in torch.stack(torch.aminmax(value)).tolist()):
        raise ValueError(f"{name} must hold finite values (found NaN or inf)")
