from setuptools import setup

package_name = "tem_localizer"

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
        "TEM localizer: belief-grid path integration and a location-belief "
        "memory in PyTorch, and its ROS 2 node."
    ),
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["tem_localizer = tem_localizer.node:main"]},
)
