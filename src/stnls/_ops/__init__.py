"""``torch.library`` registration of every stnls op (namespace ``stnls``).

Importing this package registers the ops; each module registers one family
with its fake (meta) kernels and autograd formulas. Ops pick their backend per
call (:mod:`stnls.backends`).
"""

from . import agg, search, tile  # noqa: F401
