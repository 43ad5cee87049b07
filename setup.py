"""The package list, which pyproject.toml cannot say alone.

The repository's top-level `migrations/` folder (where `alembic.ini` and the `alembic` command find
it in a checkout) ships inside the wheel as `uow/migrations`, so an installed copy runs its schema
migrations without a checkout. Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["dotflow", "dotflow.*", "uow", "uow.*"]),
        "uow.migrations",
        "uow.migrations.versions",
    ],
    package_dir={"uow.migrations": "migrations"},
)
