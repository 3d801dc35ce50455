"""``python -m avctl``: the command line (schedules start their commands this way)."""

from avctl.cli.main import main

if __name__ == "__main__":  # importing the module (every module is, in tests/test_portability.py) runs nothing
    main()
