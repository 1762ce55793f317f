"""StarCoder's other sources as assets: `notebooks` -> `notebooks_clean`, `git_commits`,
`gh_issues`, all mixed into `code_mix` by the recipe's `code_mix.sources` shares.

Declared in `orchestration.source_stages` (engine calls, reports, checks); the work lives in
`quality.notebooks`, `quality.commits` and `quality.gh_issues`.
"""

from assets._stage import stage_asset, stage_asset_checks
from orchestration.source_stages import (
    GH_ISSUES_STAGE,
    GIT_COMMITS_STAGE,
    NOTEBOOKS_CLEAN_STAGE,
    NOTEBOOKS_STAGE,
)

notebooks = stage_asset(NOTEBOOKS_STAGE)
notebooks_checks = stage_asset_checks(NOTEBOOKS_STAGE)
notebooks_clean = stage_asset(NOTEBOOKS_CLEAN_STAGE)
notebooks_clean_checks = stage_asset_checks(NOTEBOOKS_CLEAN_STAGE)
git_commits = stage_asset(GIT_COMMITS_STAGE)
git_commits_checks = stage_asset_checks(GIT_COMMITS_STAGE)
gh_issues = stage_asset(GH_ISSUES_STAGE)
gh_issues_checks = stage_asset_checks(GH_ISSUES_STAGE)
