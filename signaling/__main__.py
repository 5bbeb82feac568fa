"""``python -m signaling``: :func:`signaling.cli.main`, a Ctrl-C at any point included."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # SIGINT before main() can catch it: the quiet SIGINT exit
    sys.exit(0)

sys.exit(main())
