import sys

from genlab.cli.main import main

sys.exit(main())
