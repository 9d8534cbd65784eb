"""`python -m helpers.cam`: print the GradCAM timing benchmark (see helpers/cam/bench.py)."""
from .bench import main

if __name__ == "__main__":
    raise SystemExit(main())
