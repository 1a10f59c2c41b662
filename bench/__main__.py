"""Entry point of `python -m bench`."""

import sys

from .main import main

sys.exit(main())
