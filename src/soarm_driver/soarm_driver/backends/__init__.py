"""Robot backends behind the driver node: sim (MuJoCo), feetech (real SO-101), mock."""
