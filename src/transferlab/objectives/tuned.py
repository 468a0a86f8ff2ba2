"""A value an objective tunes on validation (e.g. a decision threshold), kept with the weights it was tuned for."""

import torch


class TunedValue(torch.nn.Module):
    """A float in the module's state dict as extra state, so every checkpoint holds the value tuned for its weights
    and testing the best checkpoint uses that checkpoint's value, not the last validation's. Kept as a float64 tensor
    made when saved: no precision setting casts it, and it has a shape as weights do."""

    def __init__(self, value: float):
        super().__init__()
        self.value = float(value)

    def get_extra_state(self):
        return torch.tensor(self.value, dtype=torch.float64)

    def set_extra_state(self, state) -> None:
        self.value = float(state)
