"""`python -m prefect_venice.emulator`: the same as `prefect-venice emulator`."""

import sys

from .cli import main

sys.exit(main())
