"""recorder_node (not implemented yet)."""
import sys


def main(argv=None):
    print("soarm_act_policy recorder_node: not implemented yet", file=sys.stderr)
    return 1
