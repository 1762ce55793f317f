"""The executor of runs launched from the UI, the schedule and the sensors.

Under `codecook ui` every step (each asset and each asset check) runs in its own process. Started
with `spawn`, each step process imports Dagster, the engines, pandas, matplotlib and MLflow anew,
10-20 s on a busy 2-core machine, which for a graph of ~70 steps cost more than the work itself.
A fork server imports the code location (`orchestration.definitions`, Dagster's default preload
for a job loaded from a module) once and forks every step process from it. Steps hold no Spark
state across the fork: each connects to the UI's one Spark Connect server when it starts.
`codecook demo` runs in process and does not use this.
"""

import dagster as dg

# Imported once in the fork server besides the code location: what steps import lazily (the
# checks' Great Expectations, MLflow, Spark's Connect client, plotting), seconds each per step.
PRELOAD = (
    "orchestration.definitions",
    "great_expectations",
    "mlflow",
    "pyspark.sql.connect.session",
    "matplotlib.pyplot",
    "duckdb",
)

step_executor = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": list(PRELOAD)}}}, name="multiprocess_forkserver"
)
