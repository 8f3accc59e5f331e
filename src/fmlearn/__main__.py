import sys

from fmlearn.cli import main

sys.exit(main())
