"""``python -m peer``: :func:`peer.cli.main`, with a Ctrl-C during its import handled too."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # the earliest Ctrl-C, before main() can catch it: import again
    from .cli import interrupted

    sys.exit(interrupted())

sys.exit(main())
