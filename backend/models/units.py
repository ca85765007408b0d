"""Networks as an ordered list of named transfer units: the thing "the first n layers" counts."""

from __future__ import annotations

from torch import Tensor, nn


class UnitNet(nn.Module):
    """Runs its units in order. The last unit is the classifier.

    `freeze(n)` fixes the first n units: no gradients, and their norm layers stay in eval mode
    whatever `train()` is called with, so frozen BatchNorm statistics never move.
    """

    def __init__(self, units: list[tuple[str, nn.Module]]):
        super().__init__()
        self.body = nn.ModuleDict(units)
        self.frozen = 0

    def units(self) -> list[tuple[str, nn.Module]]:
        return list(self.body.items())

    @property
    def unit_names(self) -> list[str]:
        return list(self.body.keys())

    def forward(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """Units [start, stop) only: `net(x, stop=n)` are the features after n units,
        `net(h, start=n)` the rest of the network on them."""
        for module in list(self.body.values())[start:stop]:
            x = module(x)
        return x

    def freeze(self, n: int) -> UnitNet:
        if not 0 <= n <= len(self.body):
            raise ValueError(f"cannot freeze {n} units of {len(self.body)}")
        self.frozen = n
        for i, module in enumerate(self.body.values()):
            for p in module.parameters():
                p.requires_grad_(i >= n)
        return self.train(self.training)

    def train(self, mode: bool = True) -> UnitNet:
        super().train(mode)
        for module in list(self.body.values())[: self.frozen]:
            module.eval()
        return self
