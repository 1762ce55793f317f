"""PySpark's worker daemon, importing pyspark from its installed, byte-compiled package.

A local Spark starts one daemon (`python -m pyspark.daemon`) that forks the Python worker of
every UDF, Arrow and pandas task. Spark puts the `pyspark.zip` and `py4j-<version>-src.zip` that
the pip package ships under `pyspark/python/lib` first on the daemon's PYTHONPATH, and Python
compiles every module it imports from a zip archive from source, on every start: zipimport never
writes a bytecode cache. Measured on this machine (2 cores, a fresh session's first Python
stage), importing `pyspark.daemon` took 0.5 s from the zip against 0.09 s from the installed
package, and a forked worker reached its first batch 0.45 s after the fork against 0.31 s: that
stage's first tasks ran 1.46 s instead of about 0.9.

Those two zips are dropped from `sys.path` before pyspark is imported only when they are the
installed package's own: they sit in the `python/lib` folder of the pyspark found on the path
(the same release by construction), and the installed py4j has the version in the zip's name.
Anything else, such as a Spark distribution's zips with no pyspark installed, is left as Spark
set it. `quality.spark_session.local_conf` names this module as `spark.python.daemon.module` for
local masters; a recipe's own `spark.conf` can name another.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

_PY4J_PREFIX, _PY4J_SUFFIX = "py4j-", "-src.zip"


def _installed_pyspark(path: list[str]) -> Path | None:
    """The folder of the first pyspark package installed as plain files on `path`."""
    for entry in path:
        if entry.endswith((".zip", ".jar")):
            continue
        package = Path(entry or ".") / "pyspark"
        if (package / "__init__.py").is_file():
            return package.resolve()
    return None


def bundled_archives(path: list[str]) -> list[str]:
    """Entries of `path` that are the installed pyspark's own copies of itself and of py4j."""
    package = _installed_pyspark(path)
    if package is None:
        return []
    bundle = package / "python" / "lib"
    try:
        py4j_version = importlib.metadata.version("py4j")
    except importlib.metadata.PackageNotFoundError:
        py4j_version = None
    dropped = []
    for entry in path:
        archive = Path(entry)
        if archive.suffix != ".zip" or archive.resolve().parent != bundle:
            continue
        name = archive.name
        same_py4j = (
            name.startswith(_PY4J_PREFIX)
            and name.endswith(_PY4J_SUFFIX)
            and name[len(_PY4J_PREFIX) : -len(_PY4J_SUFFIX)] == py4j_version
        )
        if name == "pyspark.zip" or same_py4j:
            dropped.append(entry)
    return dropped


def main() -> None:
    dropped = set(bundled_archives(sys.path))
    sys.path[:] = [entry for entry in sys.path if entry not in dropped]
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
