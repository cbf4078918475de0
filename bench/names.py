"""Names the harness and the reports share, importable without torch (the reports and
`bench list` must not pay for importing it)."""

REFERENCE_METHODS = ("Retrain", "Original")  # rows every table shows first; compared against, never "best"
GAP_METRICS = ("RA", "UA", "TA", "MIA")  # the metrics whose |gap to Retrain| makes the Avg-Gap
SCENARIO_KINDS = ("random", "class")  # random<P> and class<C> forgetting
