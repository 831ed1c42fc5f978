"""Hydra entry points: simulate, train, evaluate, deploy, benchmarks."""
