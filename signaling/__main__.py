import sys

try:
    from .cli import main
except KeyboardInterrupt:  # SIGINT while the server stack loads: the quiet SIGINT exit
    sys.exit(0)

sys.exit(main())
