"""`python -m workflows_cli` is `wf`."""

import sys

from workflows_cli.parser import main

sys.exit(main())
