"""``python -m ddaudit``: the same command line as the ``ddaudit`` script, and the module torchrun launches
(``torchrun --nproc_per_node=K -m ddaudit check ...``)."""

from ddaudit.cli import main

if __name__ == "__main__":
    main()
