"""`web_pages`, `recall_round_1..N`, `code_web_pages`: code-related pages recalled from a web pool.

Declared in `orchestration.web_stages` (engine calls, reports, checks; the work lives in
`quality.web`, `quality.recall` and `quality.webpool`). The number of rounds comes from the recipe
(`web.recall.rounds`, default 3) when the code location loads.
"""

from assets._stage import stage_asset, stage_asset_checks
from orchestration.web_stages import WEB_PAGES_STAGE, code_web_pages_stage, recall_round_stage
from quality.recipe import RecipeError, load_recipe
from quality.webpool import WebConfig

DEFAULT_ROUNDS = 3


def configured_rounds() -> int:
    """N from the recipe the code location runs with; the default when it cannot be read."""
    try:
        return load_recipe().section("web", WebConfig).recall.rounds
    except (RecipeError, OSError, ValueError):
        return DEFAULT_ROUNDS


ROUNDS = configured_rounds()
ROUND_STAGES = [recall_round_stage(n) for n in range(1, ROUNDS + 1)]
CODE_WEB_PAGES_STAGE = code_web_pages_stage(ROUNDS)

web_pages = stage_asset(WEB_PAGES_STAGE)
web_pages_checks = stage_asset_checks(WEB_PAGES_STAGE)
recall_round_assets = [stage_asset(stage) for stage in ROUND_STAGES]
recall_round_checks = [check for stage in ROUND_STAGES for check in stage_asset_checks(stage)]
code_web_pages = stage_asset(CODE_WEB_PAGES_STAGE)
code_web_pages_checks = stage_asset_checks(CODE_WEB_PAGES_STAGE)
