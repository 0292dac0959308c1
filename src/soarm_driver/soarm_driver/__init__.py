"""soarm_driver: the SO-101 robot side of soarm_act (driver node, backends, teleop)."""
