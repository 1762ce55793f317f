"""The `ablate` job: `codecook ablate` launched from the Dagster UI (Launchpad -> config -> Launch).

    ops:
      ablate:
        config:
          recipes: [recipes/ablations/base.yaml, recipes/ablations/no-filters.yaml]
          out: .codecook/ablations/sanity

The op plans the ablation (every recipe validated before any work), runs the variants as
`codecook ablate` does, each in its own subprocess and storage root, and reports the comparison
as metadata: per variant and metric the mean with its confidence interval, each difference from
the baseline with its interval and whether it is significant.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from orchestration.ablation import AblationError, ablate, plan_ablation


class AblationRunConfig(dg.Config):
    recipes: list[str] = Field(
        description="Recipe files; the first is the baseline (paths from the project root)."
    )
    out: str = Field(
        description="Folder of the ablation: runs, stage store, comparison.json, its MLflow store."
    )


@dg.op(
    description="Runs every recipe variant end to end and compares the proxy models with confidence intervals."
)
def ablate_op(context: dg.OpExecutionContext, config: AblationRunConfig) -> dg.Output[dict]:
    root = Path(__file__).resolve().parent.parent
    recipes = [str(Path(r) if Path(r).is_absolute() else root / r) for r in config.recipes]
    out = config.out if Path(config.out).is_absolute() else str(root / config.out)
    try:
        plan = plan_ablation(recipes, out)
    except AblationError as error:
        raise dg.Failure(description=str(error)) from None
    comparison = ablate(plan, log=context.log.info)
    rows = []
    for variant in comparison["variants"]:
        verdicts = variant.get("difference_vs_baseline") or {}
        rows.append(
            f"| {variant['name']} | {variant['status']} | "
            + "; ".join(str(v.get("verdict", "")) for v in verdicts.values())
            + " |"
        )
    table = "| variant | status | vs baseline |\n|---|---|---|\n" + "\n".join(rows)
    return dg.Output(
        comparison,
        metadata={
            "comparison": dg.MetadataValue.path(str(Path(out) / "comparison.json")),
            "verdicts": dg.MetadataValue.md(table),
            "wall_seconds": dg.MetadataValue.float(float(comparison["wall_seconds"])),
        },
    )


@dg.job(name="ablate", description="Recipe ablation: variants trained as proxy models, compared with CIs.")
def ablate_job():
    ablate_op()
