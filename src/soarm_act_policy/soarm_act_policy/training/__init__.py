"""Training entry point built on LeRobot."""
