"""``python -m robustlab`` is the CLI."""

from robustlab.cli import main

if __name__ == "__main__":
    main()
