"""Quality stages after near dedup: signals, filters, PII redaction, decontamination, language mix.

    near_dedup -> quality_signals (side table, by doc_id)
    near_dedup + quality_signals -> filtered_code -> redacted_code -> decontaminated_code -> code_mix

Declared in `orchestration.stages` (engine call, report, checks); the work and its rules live in
the engine modules of `quality/`.
"""

from assets._stage import stage_asset, stage_asset_checks
from orchestration.stages import (
    DECONTAMINATE_STAGE,
    FILTER_STAGE,
    MIX_STAGE,
    REDACT_STAGE,
    SIGNALS_STAGE,
)

quality_signals = stage_asset(SIGNALS_STAGE)
quality_signals_checks = stage_asset_checks(SIGNALS_STAGE)
filtered_code = stage_asset(FILTER_STAGE)
filtered_code_checks = stage_asset_checks(FILTER_STAGE)
redacted_code = stage_asset(REDACT_STAGE)
redacted_code_checks = stage_asset_checks(REDACT_STAGE)
decontaminated_code = stage_asset(DECONTAMINATE_STAGE)
decontaminated_code_checks = stage_asset_checks(DECONTAMINATE_STAGE)
code_mix = stage_asset(MIX_STAGE)
code_mix_checks = stage_asset_checks(MIX_STAGE)
