"""The benchmark suite: ``perception bench`` as a script (see ``perception/bench/run.py``; its
arguments are declared in ``perception/bench/arguments.py``).

.venv/bin/python benchmarks/run.py --random-init            # full run, ~8 minutes on 2 cores
.venv/bin/python benchmarks/run.py --model models/drivenet --quick   # the newest version
.venv/bin/python benchmarks/run.py --model models/drivenet --quick --pin off   # cores shared only
"""

import sys

from perception.bench.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
