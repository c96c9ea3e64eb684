"""Every algorithm stage the trainer runs, one final `Learner` per module."""
