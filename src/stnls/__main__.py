"""``python -m stnls``: the ``stnls`` command."""

import sys

from .cli import main

sys.exit(main())
