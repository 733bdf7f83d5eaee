"""``python -m object2vec`` is the ``object2vec`` command."""

from .cli import main

if __name__ == "__main__":
    main()
