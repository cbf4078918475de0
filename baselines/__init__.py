"""Reference methods: the gold standard (Retrain), the no-op (Original), and the baselines
every unlearning paper compares against. One file per method; importing the file registers it."""

LOAD_FIRST = ("retrain", "original")
