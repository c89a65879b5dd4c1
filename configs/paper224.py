r"""paper.py with the 224x224 input that the paper's text states (Sec. 3.5, Sec. 4.1).

conv1 is padded by 2 pixels (torchvision's choice), so it still gives 55x55: (224+4-11)//4+1.
Same parameters as paper.py (60,965,224).
"""

import ml_collections

from configs import paper


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper.get_config(arg)
    c.model.input_size = 224
    c.model.conv.padding = (2, 2, 1, 1, 1)
    return c
