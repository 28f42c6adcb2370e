"""`python -m pointperfect_forwarder` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
