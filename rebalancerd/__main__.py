import sys

from rebalancerd.cli.main import main

sys.exit(main())
