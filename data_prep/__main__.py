"""``python -m data_prep``: the same command as ``catsdogs-prep``."""

from data_prep.cli import main

if __name__ == "__main__":
    main()
