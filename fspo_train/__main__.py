"""`python -m fspo_train ...` is the `fspo` command."""

import sys

from fspo_train.cli import main

sys.exit(main())
