"""Reports generated from result records only: tables, leaderboard, plots, embeddings
and the regression check against a stored baseline.

    frame        records -> one row per finished cell (with gaps to Retrain)
    stats        mean/std over seeds and the bootstrap interval
    render       Markdown / LaTeX / HTML table writers
    tables       the Avg-Gap tables in the CoUn layout
    plots        the quality/cost trade-off and the per-metric gap bars
    leaderboard  one page per results folder (Markdown and self-contained HTML)
    embeddings   t-SNE and Poincare-disk pictures of features before/after unlearning
    baseline     the stored baseline file (per-cell summaries with their environment)
    tolerances   the regression-check rules, parsed from strings like "TA:0.5"
    compare      results against a baseline: every failure collected into one table
    commands     the CLI entry points
"""
