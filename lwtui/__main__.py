import sys

from lwtui.cli.entry import main

sys.exit(main())
