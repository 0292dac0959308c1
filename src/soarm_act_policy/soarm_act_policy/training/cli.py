"""training/cli (not implemented yet)."""
import sys


def main(argv=None):
    print("soarm_act_policy training/cli: not implemented yet", file=sys.stderr)
    return 1
