"""Base class of the modules that only store arguments and call a function."""

from __future__ import annotations

import torch


class ConfiguredModule(torch.nn.Module):
    """Stores the constructor arguments named in ``ARGUMENTS`` and calls ``function``.

    ``forward(*tensors, **call_kwargs)`` returns
    ``function(*tensors, **call_kwargs, **stored_arguments)``.
    """

    ARGUMENTS: tuple[str, ...] = ()

    @staticmethod
    def function(*args, **kwargs):
        raise NotImplementedError

    def _store(self, arguments: dict) -> None:
        for name in self.ARGUMENTS:
            setattr(self, name, arguments[name])

    def forward(self, *tensors, **call_kwargs):
        stored = {name: getattr(self, name) for name in self.ARGUMENTS}
        return type(self).function(*tensors, **call_kwargs, **stored)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.ARGUMENTS)
