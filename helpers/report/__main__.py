"""`python -m helpers.report`: see helpers/report/build.py."""
from .build import main

raise SystemExit(main())
