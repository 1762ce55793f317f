"""Exact and near deduplication of document rows on Spark.

config      DedupConfig (the recipe's `dedup:` section) and the LSH bands x rows arithmetic
minhash     token shingles, MinHash signatures and band keys for an Arrow batch, in numpy
components  connected components with large-star / small-star on Spark DataFrames
keep        the keep policy shared by exact and near dedup (stars, date, licence, hash)
engine      exact_dedup and near_dedup: DataFrames in, kept + rejected DataFrames out
report      facts about a written stage (DuckDB): rates per language, cluster sizes, checks
cli         `codecook dedup --input PATH --output DIR [--config FILE]`
"""
