"""`python -m helpers.tools.report`: see helpers/tools/report/build.py."""
from .build import main

raise SystemExit(main())
