import sys

from vihtr.app.cli import main

sys.exit(main())
