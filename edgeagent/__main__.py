"""``python -m edgeagent`` is the ``agent`` command."""

import sys

from edgeagent.cli.main import main

sys.exit(main())
