import sys

from ddsp_morph.realtime.cli import main

sys.exit(main())
