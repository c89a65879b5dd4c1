"""The same network in PyTorch, for like-for-like speed comparisons (issue 8).

Built from the same `config.model` fields as ours: nn.Conv2d(groups=...), nn.LocalResponseNorm
(its alpha multiplies the mean, so the paper's sum convention passes alpha * size), per-tower
LRN by chunking channels, nn.MaxPool2d, nn.Dropout, nn.Linear. `load_params` copies our
parameter tree in (HWIO -> OIHW; fc6's rows from our NHWC flatten to torch's NCHW flatten), and
tests/test_benchmarks.py checks both nets give the same logits.
"""

import numpy as np
import torch
from torch import nn


class LRN(nn.Module):
    def __init__(self, lrn: dict, groups: int):
        super().__init__()
        alpha = lrn["alpha"] if lrn["convention"] == "caffe" else lrn["alpha"] * lrn["size"]
        self.norm = nn.LocalResponseNorm(lrn["size"], alpha=alpha, beta=lrn["beta"], k=lrn["k"])
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return self.norm(x)
        return torch.cat([self.norm(c) for c in torch.chunk(x, self.groups, dim=1)], dim=1)


class TorchAlexNet(nn.Module):
    """conv1..conv5, fc6..fc8 of `m` (config.model as a dict), NCHW input."""

    def __init__(self, m: dict):
        super().__init__()
        c, layers = m["conv"], []
        towers = m["towers"] if m["lrn"]["within_towers"] else 1
        channels, size = m["input_channels"], m["input_size"]
        for i, features in enumerate(c["features"]):
            n = i + 1
            conv = nn.Conv2d(
                channels,
                features,
                c["kernel_size"][i],
                stride=c["stride"][i],
                padding=c["padding"][i],
                groups=c["groups"][i],
            )
            stages = [conv, nn.ReLU(inplace=True)]
            size = (size + 2 * c["padding"][i] - c["kernel_size"][i]) // c["stride"][i] + 1
            norm = [LRN(m["lrn"], towers)] if m["lrn"]["enabled"] and n in m["lrn"]["after"] else []
            pool = []
            if n in m["pool"]["after"]:
                pool = [nn.MaxPool2d(m["pool"]["window"], m["pool"]["stride"])]
                size = (size - m["pool"]["window"]) // m["pool"]["stride"] + 1
            stages += norm + pool if m["norm_before_pool"] else pool + norm
            layers.append(nn.Sequential(*stages))
            channels = features
        self.features = nn.Sequential(*layers)
        self.pool5_shape = (channels, size, size)
        widths = [channels * size * size, *m["fc_features"], m["num_classes"]]
        first = len(c["features"]) + 1
        fcs = []
        for j in range(len(widths) - 1):
            if f"fc{first + j}" in m["dropout"]["inputs_of"]:
                fcs.append(nn.Dropout(m["dropout"]["rate"]))
            fcs.append(nn.Linear(widths[j], widths[j + 1]))
            if j < len(widths) - 2:
                fcs.append(nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(*fcs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def load_params(net: TorchAlexNet, params: dict) -> None:
    """Copies our tree {conv1..conv5, fc6..fc8: {kernel, bias}} into `net`."""
    convs = [seq[0] for seq in net.features]
    fcs = [mod for mod in net.classifier if isinstance(mod, nn.Linear)]
    names = [f"conv{i + 1}" for i in range(len(convs))]
    names += [f"fc{len(convs) + 1 + j}" for j in range(len(fcs))]
    c, h, w = net.pool5_shape
    with torch.no_grad():
        for name, mod in zip(names, convs + fcs, strict=True):
            k = np.asarray(params[name]["kernel"], np.float32)
            if k.ndim == 4:
                k = k.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            elif mod is fcs[0]:
                k = k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
                k = k.T
            else:
                k = k.T
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(k)))
            mod.bias.copy_(torch.from_numpy(np.array(params[name]["bias"], np.float32)))
