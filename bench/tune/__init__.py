"""Equal-budget hyperparameter search (`bench tune`): holdout data, Optuna studies, tuned profile data, reports."""
