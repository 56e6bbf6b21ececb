"""Evaluation: reconstruction metrics and the evaluation of a trained run."""
