"""The contrastive family and newer methods. One file per method; importing the file registers it."""
