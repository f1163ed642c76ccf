import sys

from prefaudit.cli import main

sys.exit(main())
