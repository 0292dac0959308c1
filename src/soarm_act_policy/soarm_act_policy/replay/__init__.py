"""`replay`: play the recorded actions of LeRobot dataset episodes on the driver (see core, client, cli)."""
