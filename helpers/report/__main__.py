"""`python -m helpers.report`: see helpers/report/build.py."""
import sys

from .build import main

sys.exit(main())
