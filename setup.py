"""The package's layout for setuptools (everything else is in pyproject.toml): ``ablate`` and its subpackages, and
the repository's ``search_spaces/`` and ``examples/plugins/`` shipped inside it as ``ablate/search_spaces`` and
``ablate/examples/plugins``, so a wheel install finds ``--space qlblock`` and the examples
(``ablate.space.loader.shipped``); pyproject's ``[tool.setuptools]`` tables cannot map a folder outside the package
into it while also finding the package's own subpackages."""

from setuptools import find_namespace_packages, setup

SHIPPED = {"ablate.search_spaces": "search_spaces", "ablate.examples.plugins": "examples/plugins"}

setup(packages=find_namespace_packages(include=["ablate", "ablate.*"], exclude=["*__pycache__*"]) + list(SHIPPED),
      package_dir=SHIPPED)
