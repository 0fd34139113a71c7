from setuptools import setup

package_name = "treeworld_schema"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    package_data={package_name: ["fastdds_profile.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="Tree World team",
    maintainer_email="treeworld@example.org",
    description="Typed, validated configuration sections shared by the Tree World packages.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
)
