"""What `quality/`, `training/` and the orchestration layer share, free of Spark and Dagster.

`contracts.config`: typed configs from YAML data (validation, deployment fields, plain dumps).
`contracts.recipe`: the recipe model (sections, `extends`, overrides, placeholders, hashes).
`contracts.storage`: the storage layout, manifests, atomic writes and content checksums.
"""
