"""Connected components of a large graph with Spark DataFrames: large-star / small-star.

Kiveris et al., "Connected Components in Map Reduce and Beyond" (SoCC 2014). Every node carries
its own label (here the doc_id string); two operations alternate until the graph stops changing:

  large-star  every node u links each *larger* neighbour to the smallest label among u and its
              neighbours;
  small-star  every node u links each *smaller-or-equal* neighbour, and itself, to the smallest
              label among u and its smaller neighbours.

Both keep the components intact and shrink their diameter; after O(log^2 n) rounds every
component is a star around its smallest label, which becomes the component id. All the work is
joins and group-bys spread over the cluster: nothing is collected to the driver, and the result
is a pure function of the edge set, whatever the partitioning (so 1 core and 20 give the same ids).

`label_components` gives the same labels for a graph small enough to sit on the driver: a numpy
union-find without any Spark job, which the near dedup uses below `driver_graph_max_edges`.

Edges are kept normalised as (a, b) with a < b. Each round's output is checkpointed locally to cut
the query plan (each round reads its input twice, so the plan would otherwise double per round),
and a round costs one Spark job: large-star, small-star and the convergence check together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class ComponentsDidNotConverge(RuntimeError):
    """The iteration bound was reached; the graph or the bound is not what it should be."""


@dataclass
class Components:
    """`labels`: (node, root) for every node that had at least one edge; root = smallest node."""

    labels: DataFrame
    rounds: int
    edges_in: int


# Edges per partition the rounds aim for: small graphs run in one task per stage, big ones spread.
EDGES_PER_PARTITION = 250_000


def _normalise(edges: DataFrame, partitions: int | None = None) -> DataFrame:
    """(a, b) with a < b, no self-loops, no repeats; hash-partitioned by (a, b) when asked."""
    ordered = edges.select(F.least("a", "b").alias("a"), F.greatest("a", "b").alias("b")).filter(
        F.col("a") != F.col("b")
    )
    if partitions is None:
        return ordered.distinct()
    # Already clustered by (a, b), so the de-duplication needs no second shuffle.
    return ordered.repartition(partitions, "a", "b").dropDuplicates(["a", "b"])


def large_star(edges: DataFrame, partitions: int) -> DataFrame:
    both = (
        edges.select(F.col("a").alias("u"), F.col("b").alias("v"))
        .unionByName(edges.select(F.col("b").alias("u"), F.col("a").alias("v")))
        .repartition(partitions, "u")  # the group-by and the join below reuse this partitioning
    )
    # m(u): smallest label among u and its neighbours.
    smallest = both.groupBy("u").agg(F.min("v").alias("m")).select("u", F.least("u", "m").alias("m"))
    # Each larger neighbour v of u is re-linked to m(u) (v > u >= m(u), so never a self-loop).
    return _normalise(
        both.filter(F.col("v") > F.col("u"))
        .join(smallest, "u")
        .select(F.col("m").alias("a"), F.col("v").alias("b")),
        partitions,
    )


def small_star(edges: DataFrame, partitions: int) -> DataFrame:
    # Orient every edge from its larger end u = b to its smaller end v = a.
    by_larger = edges.repartition(partitions, "b")
    smallest = by_larger.groupBy("b").agg(F.min("a").alias("m"))  # m(u) < u: u's smallest neighbour
    relinked = by_larger.join(smallest, "b").select(F.col("m").alias("a"), F.col("a").alias("b"))
    own = smallest.select(F.col("m").alias("a"), F.col("b").alias("b"))
    return _normalise(relinked.unionByName(own), partitions)


def _star_forest_check(edges: DataFrame, partitions: int | None = None) -> tuple[bool, int]:
    """(is every component a star around its minimum, number of edges), in one pass.

    A star forest with minimum centres: every b has exactly one a, and no a is itself some b.
    """
    roles = edges.select(
        F.col("b").alias("node"), F.lit(1).alias("as_leaf"), F.lit(0).alias("as_centre")
    ).unionByName(
        edges.select(F.col("a").alias("node"), F.lit(0).alias("as_leaf"), F.lit(1).alias("as_centre"))
    )
    if partitions is not None:
        roles = roles.repartition(partitions, "node")
    per_node = roles.groupBy("node").agg(F.sum("as_leaf").alias("leaf"), F.max("as_centre").alias("centre"))
    bad = (F.col("leaf") > 1) | ((F.col("leaf") >= 1) & (F.col("centre") == 1))
    # Each edge has exactly one leaf end, so the leaf counts add up to the edge count.
    facts = per_node.agg(
        F.coalesce(F.sum(F.when(bad, 1).otherwise(0)), F.lit(0)).alias("bad"),
        F.coalesce(F.sum("leaf"), F.lit(0)).alias("edges"),
    ).collect()[0]
    return int(facts["bad"]) == 0, int(facts["edges"])


def connected_components(edges: DataFrame, *, max_rounds: int = 60) -> Components:
    """Label every node of an undirected graph given as columns (a, b) with its component's minimum."""
    current = _normalise(edges.select(F.col("a").cast("string"), F.col("b").cast("string")))
    # Cut the plan here; the check below is the action that computes and stores it.
    current = current.localCheckpoint(eager=False)
    # LSH links bucket members to the bucket minimum, so the input is often a star forest already.
    converged, edges_in = _star_forest_check(current)
    # Partitions from the graph's size, not the machine: the result never depends on them.
    partitions = max(1, -(-edges_in // EDGES_PER_PARTITION))
    rounds = 0
    while not converged:
        if rounds >= max_rounds:
            raise ComponentsDidNotConverge(f"connected components did not converge in {max_rounds} rounds")
        rounds += 1
        # One Spark job per round: both stars and the convergence check run in the check's action.
        current = small_star(large_star(current, partitions), partitions).localCheckpoint(eager=False)
        converged, _ = _star_forest_check(current, partitions)
    labels = (
        current.select(F.col("b").alias("node"), F.col("a").alias("root"))
        .unionByName(current.select(F.col("a").alias("node"), F.col("a").alias("root")))
        .distinct()
    )
    return Components(labels=labels, rounds=rounds, edges_in=edges_in)


# ---- Small graphs: the same labels on the driver, in numpy ------------------------------------


def label_components(left: np.ndarray, right: np.ndarray, nodes: int) -> tuple[np.ndarray, int]:
    """(each node's component minimum, hooking rounds) for edges `left[i] - right[i]` over 0..nodes-1.

    Nodes are numbered in doc_id order, so the minimum node index is the smallest doc_id: the same
    root the Spark rounds converge to. Each round hooks every edge's two roots onto the smaller one
    (`np.minimum.at`), then jumps pointers until every node points at a root; a round leaves the
    labels unchanged only when every edge joins two nodes of one root, i.e. at the components.
    A node's label only ever decreases and stays inside its component, so the smallest node of a
    component keeps its own index, and every other member ends on it.
    """
    label = np.arange(nodes, dtype=np.int64)
    rounds = 0
    while True:
        rounds += 1
        left_root, right_root = label[left], label[right]
        lower = np.minimum(left_root, right_root)
        hooked = label.copy()
        np.minimum.at(hooked, left_root, lower)
        np.minimum.at(hooked, right_root, lower)
        while True:  # pointer jumping: log(depth) passes
            jumped = hooked[hooked]
            if np.array_equal(jumped, hooked):
                break
            hooked = jumped
        if np.array_equal(hooked, label):
            return label, rounds
        label = hooked
