"""`python -m fspo_train ...` is the `fspo` command."""

import sys

from fspo_train.cli.main import main

sys.exit(main())
