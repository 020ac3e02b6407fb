"""``python -m engine.media``: see engine.media.main."""

import sys

from engine.media.main import main

sys.exit(main())
