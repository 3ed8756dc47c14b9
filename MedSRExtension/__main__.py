"""``python -m MedSRExtension`` runs the CLI."""
import sys

from .cli import main

if __name__ == "__main__":  # not when a spawned worker process (medsr batch) re-imports this module
    sys.exit(main())
