import sys

from fmlearn.cli import console_main

sys.exit(console_main())
