# A small Cython module: the input of tests/test_generated_real.py.
cimport cython
from libc.math cimport sqrt


cdef class Running:
    cdef public long count
    cdef double mean, m2

    def __init__(self):
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    cpdef push(self, double value):
        cdef double delta = value - self.mean
        self.count += 1
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)

    @property
    def stddev(self):
        return sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


@cython.boundscheck(False)
def total(double[:] values):
    cdef Py_ssize_t i
    cdef double acc = 0.0
    for i in range(values.shape[0]):
        acc += values[i]
    return acc
