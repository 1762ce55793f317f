"""`exact_dedup` and `near_dedup` (declared in `orchestration.stages`; rules in `quality.dedup`)."""

from assets._stage import stage_asset, stage_asset_checks
from orchestration.stages import EXACT_DEDUP_STAGE, NEAR_DEDUP_STAGE

exact_dedup_asset = stage_asset(EXACT_DEDUP_STAGE)
exact_dedup_checks = stage_asset_checks(EXACT_DEDUP_STAGE)
near_dedup_asset = stage_asset(NEAR_DEDUP_STAGE)
near_dedup_checks = stage_asset_checks(NEAR_DEDUP_STAGE)
