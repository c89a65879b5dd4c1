"""A tiny fake ILSVRC-2012 with the real layout (no TensorFlow here).

A train tar of per-class <wnid>.tar files and a val tar of ILSVRC2012_val_<8 digits>.JPEG files,
with JPEGs of odd sizes, a grey one, a CMYK one and a PNG named .JPEG under the file names TFDS's
builder fixes (Sec. 2).
"""

import io

import numpy as np
from PIL import Image

from alexnet_jax import prepare
from benchmarks.bench_input import tar_bytes

WNIDS = prepare._lines("labels.txt")  # the 1000 classes, in label order
VAL_WNIDS = prepare._lines("validation_labels.txt")  # the class of val image i+1
VAL = (3, 1, 2)  # val file numbers, stored out of order


def picture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = rng.uniform(40, 200, 3) + 30 * np.sin(
        x[..., None] / rng.uniform(2, 6, 3) + y[..., None] / 5
    )
    return np.clip(base, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, quality=95)
    return buf.getvalue()


def write(manual) -> tuple[dict, dict]:
    """The two tars in `manual` (a pathlib.Path); returns ({file name: (wnid, PIL image)},
    {file name: the RGB pixels PIL decodes from the stored file})."""
    pictures = {  # file name -> (class, PIL image); sizes odd and unequal on purpose
        "n01440764_1.JPEG": ("n01440764", Image.fromarray(picture(45, 31, 0))),
        "n01440764_2.JPEG": ("n01440764", Image.fromarray(picture(30, 52, 1))),
        "n01440764_3.JPEG": ("n01440764", Image.fromarray(picture(27, 40, 2)[..., 0], "L")),
        "n01739381_1309.JPEG": ("n01739381", Image.fromarray(picture(33, 41, 3)).convert("CMYK")),
        "n01739381_7.JPEG": ("n01739381", Image.fromarray(picture(50, 37, 4))),
        "n02105855_2933.JPEG": ("n02105855", Image.fromarray(picture(39, 39, 5))),  # a PNG
        "n02105855_8.JPEG": ("n02105855", Image.fromarray(picture(29, 44, 6))),
    }
    encoded = {
        name: encode(im, "PNG" if name == "n02105855_2933.JPEG" else "JPEG")
        for name, (_, im) in pictures.items()
    }
    per_class = {}
    for name, (wnid, _) in pictures.items():
        per_class.setdefault(f"{wnid}.tar", {})[name] = encoded[name]
    manual.mkdir(parents=True, exist_ok=True)
    (manual / "ILSVRC2012_img_train.tar").write_bytes(
        tar_bytes({name: tar_bytes(files) for name, files in per_class.items()})
    )
    val = {f"ILSVRC2012_val_{i:08d}.JPEG": picture(35 + i, 48 - i, 10 + i) for i in VAL}
    encoded.update({name: encode(Image.fromarray(a)) for name, a in val.items()})
    (manual / "ILSVRC2012_img_val.tar").write_bytes(
        tar_bytes({name: encoded[name] for name in val})
    )
    decoded = {n: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for n, b in encoded.items()}
    return pictures, decoded


def reference_fixed_size(pixels: np.ndarray, size: int) -> np.ndarray:
    """PIL: shorter side to `size` (bilinear), the central size x size window (float64)."""
    h, w = pixels.shape[:2]
    scale = size / min(h, w)
    new = (int(np.floor(w * scale + 0.5)), int(np.floor(h * scale + 0.5)))
    x = np.asarray(Image.fromarray(pixels).resize(new, Image.BILINEAR), np.float64)
    top, left = (x.shape[0] - size) // 2, (x.shape[1] - size) // 2
    return x[top : top + size, left : left + size]
