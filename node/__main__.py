"""`python -m node` is the same program as the `node` script."""

from node.cli import main

if __name__ == "__main__":
    main()
