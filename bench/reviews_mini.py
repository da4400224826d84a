"""Reviews-mini reference benchmark: FSPO and the paper's baselines, trained from scratch.

Run from the repository root:

    python bench/reviews_mini.py            # CPU size (what `make demo` trains), seed 0
    python bench/reviews_mini.py --seed 1   # another seed
    python bench/reviews_mini.py --full     # GPU size (both responses)
    python bench/reviews_mini.py --both-responses --seeds 0 1 2 --threads 1
                                            # the paper's setting, 3 seeds, one torch thread

Writes bench/results/reviews_mini.{json,md,png} (machine, versions, seed, wall time inside;
`reviews_mini_both.*` for the both-responses setting), every number with its 95% interval.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fspo_train.reviews_mini.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
