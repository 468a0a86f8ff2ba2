"""What runs are turned into: the study report and its claims, curves, and the model card."""
