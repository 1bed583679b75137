"""`python -m procengine ...` is the `procengine` command."""

from procengine.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
