from setuptools import find_packages, setup

package_name = "soarm_act_policy"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # The SO-101 URDF (soarm_act_policy.kinematics reads it at runtime); its source
        # of truth is the repository's config/urdf/ (bringup).
        ("share/" + package_name + "/urdf", ["../../config/urdf/so101.urdf"]),
        # The dataset topic list shared by the recorder and record.launch.py.
        ("share/" + package_name + "/config", ["../../config/record_topics.yaml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="soarm_act maintainers",
    maintainer_email="maintainers@soarm-act.dev",
    description="LeRobot ACT policy node with temporal ensembling, rosbag2 recording and "
    "conversion to LeRobot datasets, training and evaluation entry points.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "policy = soarm_act_policy.policy_node:main",
            "recorder = soarm_act_policy.recorder_node:main",
            "bag_to_lerobot = soarm_act_policy.conversion.cli:main",
            "train = soarm_act_policy.training.cli:main",
            "evaluate = soarm_act_policy.evaluation.cli:main",
            "replay = soarm_act_policy.replay.cli:main",
            "rollout = soarm_act_policy.evaluation.rollout:main",
            "select_checkpoint = soarm_act_policy.evaluation.selection:main",
            "pretrain_backbone = soarm_act_policy.training.pretrain_backbone:main",
            "run_policy_server = soarm_act_policy.run_policy_node:main",
        ],
    },
)
