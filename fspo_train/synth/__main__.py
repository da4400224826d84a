"""`python -m fspo_train.synth synth ...` (the same as `fspo synth ...`)."""

import sys

from fspo_train.synth.cli import main

sys.exit(main())
