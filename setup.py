"""Builds the compiled coordinate-descent extension ``tikhon._cd`` from ``ext/``.

Metadata lives in pyproject.toml; this file only declares the extension so that
``pip install .`` (or ``pip install -e .``) compiles it with numpy's headers and -O3.
"""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "tikhon._cd",
        sources=["ext/tikhon/_cd.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
