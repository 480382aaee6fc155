import sys

from specscout.cli import main

sys.exit(main())
