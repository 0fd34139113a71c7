from glob import glob

from setuptools import setup

package_name = "treeworld_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Tree World team",
    maintainer_email="treeworld@example.org",
    description=(
        "Tree World bringup: the treeworld command, "
        "in-process runner, launcher, bags, evaluation and plots."
    ),
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["treeworld = treeworld_bringup.cli:main"]},
)
