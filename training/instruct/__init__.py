"""Instruction tuning: Self-OSS-Instruct (`self_align`), its prompts, and two-stage SFT (`sft`).

Dagster-free and Spark-free, like the rest of `training/`.
"""
