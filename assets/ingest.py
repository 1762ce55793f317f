"""`raw_code`: the recipe's code sources as document rows (declared in `orchestration.stages`,
rules in `quality.ingest`)."""

from assets._stage import stage_asset, stage_asset_checks
from orchestration.stages import RAW_CODE_STAGE

raw_code = stage_asset(RAW_CODE_STAGE)
raw_code_checks = stage_asset_checks(RAW_CODE_STAGE)
