"""`python -m cheartflow_sdk.cli ...`, the same as `cheartflow ...`."""

import sys

from . import main

sys.exit(main())
