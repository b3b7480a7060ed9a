"""``python -m longtail.cli``: the ``longtail`` command."""
import sys

from longtail.cli import main

sys.exit(main())
