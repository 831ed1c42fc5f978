"""Agents: SB3 algorithms, heuristic baselines and exported policy artifacts."""
