"""The one compiled module; everything else about the package is in pyproject.toml.

``suppression/_membership.c`` is batch membership in C (``suppression/membership.py``
says why). It is optional: without a C compiler the install still succeeds, and
lookups fall back to pyroaring's per-number calls with the same answers.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "suppression._membership",
            sources=["suppression/_membership.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
