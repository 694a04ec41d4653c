"""The benchmark suite: ``perception bench`` as a script (see ``perception/bench/run.py``; its
arguments are declared in ``perception/cli.py``).

.venv/bin/python benchmarks/run.py --random-init            # full run, ~6 minutes on 2 cores
.venv/bin/python benchmarks/run.py --model models/drivenet --quick   # the newest version
"""

import sys

from perception.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
