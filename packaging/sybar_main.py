"""The bundle's entry script (packaging/sybar.spec): `sybar`, `sybar-isql` and the media server in one executable."""

import sys

from engine.frozen import bundle_main

sys.exit(bundle_main())
