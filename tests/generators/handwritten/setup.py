"""Builds the geometry extension: SWIG wraps geometry.i, Cython compiles the stats module."""

from Cython.Build import cythonize
from setuptools import Extension, setup

geometry = Extension(
    "_geometry",
    sources=["geometry.i", "geometry.cpp"],
    swig_opts=["-c++", "-py3"],
    language="c++",
)

setup(
    name="shapes",
    version="0.3.1",
    ext_modules=[geometry, *cythonize("stats.pyx", language_level=3)],
    py_modules=["geometry"],
)
