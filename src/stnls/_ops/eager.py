"""Plain eager calls of the custom ops, without the dispatcher.

A ``torch.library`` custom op spends tens of microseconds of host time per call in its
dispatch and autograd wrappers (on a 2-core CPU: about 30 us without autograd and 80-120
us with it, against 7 and 24 us through a ``torch.autograd.Function``): as long as the
kernels of a small call. In plain eager mode the public API therefore runs an op's own
implementation and autograd formulas through a ``torch.autograd.Function``
(:func:`eager_call`), and the backward passes call the ops they are made of directly
(:func:`direct_call`); under ``torch.compile`` or export, ``vmap`` and other functorch
transforms, fake or subclassed tensors, and any dispatch or function mode (for example
``with torch.device(...)``), it calls the registered op, so those see the same single
opaque op as before. Both routes run the same functions, so they give the same results.
"""

from __future__ import annotations

import torch

# Take the shortcut in plain eager mode (tests switch it off to compare both routes).
SHORTCUT = True


def _plain_eager(args) -> bool:
    """Whether a call with ``args`` is plain eager: no tracing, transform or mode, and
    only plain tensors."""
    if not SHORTCUT or torch.compiler.is_compiling():
        return False
    if (torch._C._are_functorch_transforms_active() or torch._C._len_torch_dispatch_stack()
            or torch._C._is_torch_function_mode_enabled()):
        return False
    return all(type(a) is torch.Tensor or type(a) is torch.nn.Parameter
               for a in args if isinstance(a, torch.Tensor))


def eager_call(name: str, op, forward, setup_context, backward):
    """A function that calls ``op`` (the custom op ``stnls::<name>`` registered from
    ``forward`` with ``register_autograd(backward, setup_context=setup_context)``), through
    an ``autograd.Function`` of the same three functions in plain eager mode. Callers pass
    every argument of the op's schema (the Function knows no defaults)."""

    def function_forward(ctx, *args):
        output = forward(*args)
        setup_context(ctx, args, output)
        return output

    function = type(name, (torch.autograd.Function,),
                    dict(forward=staticmethod(function_forward), backward=staticmethod(backward)))

    def call(*args):
        if _plain_eager(args):
            return function.apply(*args)
        return op(*args)

    return call


def direct_call(op, forward):
    """A function that calls ``op`` (the custom op registered from ``forward``), or
    ``forward`` itself in plain eager mode when no graph is being recorded (in a backward
    pass without ``create_graph``). With both shortcuts an H200 machine's host spent
    0.84-0.93 ms per ``WeightedPatchSum`` forward+backward on the small benchmark
    configs, against 1.00-1.16 ms through the registered ops."""

    def call(*args):
        if not torch.is_grad_enabled() and _plain_eager(args):
            return forward(*args)
        return op(*args)

    return call
