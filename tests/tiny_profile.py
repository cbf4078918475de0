"""The tiny profile the command-line tests run (digits, a small CNN, Original and FT on
random10, 3 training epochs): seconds on two cores once the session's cache holds its Original."""

TINY = """
description = "tiny test profile"
dataset = "digits"
model = "small_cnn"
device = "cpu"
seeds = [0]
scenarios = ["random10"]
methods = ["Original", "FT"]
download = false
[train]
epochs = 3
batch_size = 128
[params.FT]
epochs = 1
"""
