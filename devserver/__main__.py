"""`python -m devserver`: the same as the `devserve` command."""

from devserver.cli import entry

if __name__ == "__main__":
    entry()
