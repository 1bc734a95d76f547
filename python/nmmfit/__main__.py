"""``python -m nmmfit``: the command line of :mod:`nmmfit.cli`."""
import sys

from .cli import main

sys.exit(main())
