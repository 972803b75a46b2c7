"""Python packaging for catkin (catkin_python_setup) and for plain pip installs of the library."""

from setuptools import find_packages, setup

setup(
    name="deep_perception",
    version="0.1.0",
    packages=find_packages("src"),
    package_dir={"": "src"},
    package_data={"deep_perception": ["../../cuda/*.cu", "../../cuda/*.h"]},
    entry_points={
        "console_scripts": [
            "citygml2pc = deep_perception.citygml.__main__:main",
            "dp-train = deep_perception.train.__main__:main",
        ]
    },
)
