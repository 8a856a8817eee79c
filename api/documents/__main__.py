"""python -m api.documents [FOLDER]: check a template folder (until `creditctl policy check` does)."""

import sys

from .check import main

sys.exit(main())
