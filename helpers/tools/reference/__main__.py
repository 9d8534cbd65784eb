"""`python -m helpers.tools.reference`: see helpers/tools/reference/__init__.py."""
from helpers.tools.reference import main

if __name__ == "__main__":
    raise SystemExit(main())
