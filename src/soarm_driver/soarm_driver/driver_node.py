"""Driver node (to be implemented in issue 3)."""
import sys


def main(argv=None):
    print("soarm_driver driver: not implemented yet", file=sys.stderr)
    return 1
