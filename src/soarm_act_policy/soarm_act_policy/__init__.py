"""soarm_act_policy: LeRobot ACT on ROS 2 - policy node, recording, conversion, training, evaluation."""
