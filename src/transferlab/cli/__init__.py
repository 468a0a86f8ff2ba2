"""The commands: transferlab-eval, -predict, -generate, -baseline (transferlab-train is transferlab.train), and the
front that composes and checks a config before Hydra runs a job (front.py)."""
