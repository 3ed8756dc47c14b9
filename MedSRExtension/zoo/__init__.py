"""Shipped weights (sha256-verified, pickle-free) and the model catalog."""
