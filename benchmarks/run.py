"""The benchmark suite: ``perception bench`` as a script (see ``perception/bench/run.py``).

.venv/bin/python benchmarks/run.py --random-init            # full run, ~6 minutes on 2 cores
.venv/bin/python benchmarks/run.py --model models/drivenet/11 --quick
"""

import sys

from perception.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
