"""`python -m fspo_train.synth synth ...` (the same as `fspo synth ...`)."""

import sys

from fspo_train.cli.synth import main

sys.exit(main())
