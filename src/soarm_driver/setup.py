from setuptools import find_packages, setup

package_name = "soarm_driver"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="soarm_act maintainers",
    maintainer_email="maintainers@soarm-act.dev",
    description="SO-101 driver node (MuJoCo sim, Feetech hardware, mock) and teleoperation sources.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "driver = soarm_driver.driver_node:main",
            "teleop = soarm_driver.teleop_node:main",
        ],
        # Gymnasium env plugins: registers "soarm/PickPlace-v0" (soarm_driver.sim.gym_env)
        "gymnasium.envs": [
            "soarm = soarm_driver.sim.gym_registration:register_envs",
        ],
    },
)
