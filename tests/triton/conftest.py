"""Run the Triton kernels through Triton's CPU interpreter.

``TRITON_INTERPRET`` is read when a kernel is defined, so it must be set
before ``stnls.backends.triton`` is imported. If that already happened in this
process (compiled for a GPU), these tests are skipped: run ``tests/triton`` in
a pytest process of its own.
"""

import os
import sys

import pytest

_ALREADY_COMPILED = ("stnls.backends.triton" in sys.modules
                     and os.environ.get("TRITON_INTERPRET") != "1")
if not _ALREADY_COMPILED:
    os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(autouse=True)
def _interpreter_only():
    if _ALREADY_COMPILED:
        pytest.skip("the Triton backend was imported without TRITON_INTERPRET=1 in this process; "
                    "run tests/triton in a pytest process of its own")
    pytest.importorskip("triton")
