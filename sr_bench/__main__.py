"""``python -m sr_bench`` runs the same CLI as the ``srbench`` console script."""

from sr_bench.cli.app import main

if __name__ == "__main__":
    main()
