#!/usr/bin/env bash
# Installs the code generators whose real output tests/test_generated_real.py runs through
# quality.generated (each generated file must be dropped, naming its generator):
#   protobuf-compiler, protobuf-compiler-grpc   protoc and the gRPC C++/Python/... plugins
#   protoc-gen-go, protoc-gen-go-grpc           protoc's Go and Go gRPC plugins
#   thrift-compiler                             Apache Thrift (C++, Python, Java, Go, JS, ...)
#   swig                                        SWIG wrappers (Python, Java, Go, ...)
#   flex, bison, byacc, re2c                    lexer and parser generators
#   qtbase5-dev-tools, qt6-base-dev-tools       moc, uic and rcc of Qt 5 and Qt 6
#   pyqt5-dev-tools                             pyuic5 and pyrcc5 (PyQt5's Python forms)
#   cython3                                     Debian's Cython (the 0.29 series; PyPI's 3.x comes
#                                               with the `generators` extra)
#   openjdk-17-jre-headless                     runs the jar of openapi-generator-cli (PyPI, the
#                                               `generators` extra)
# Required for that test: when it cannot install, it says why and exits 1.
set -u
PACKAGES=(
    protobuf-compiler protobuf-compiler-grpc protoc-gen-go protoc-gen-go-grpc
    thrift-compiler swig flex bison byacc re2c
    qtbase5-dev-tools qt6-base-dev-tools pyqt5-dev-tools cython3 openjdk-17-jre-headless
)
# shellcheck source=apt-packages.sh
. "$(dirname "$0")/apt-packages.sh"
apt_packages generators required "install them yourself (tests/test_generated_real.py runs them)" "${PACKAGES[@]}"
