"""GradCAM timing (`python -m helpers.tools.cam_bench`): this wrapper, the forward passes alone, the library plainly."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings

import pandas as pd
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from .bench import header
from helpers.core.models import build_model
from helpers.notebook.cam.wrappers import (CAM_LAYERS, METHODS, BlankCamWarning, check_method, compute_cams,
                                           layer_map_sizes, set_threads)


def benchmark(images: int = 1000, layer: str = "layer4", stems=("imagenet", "cifar"), batch_size: int = 250,
              method: str = "GradCAM", plain: bool = True, seed: int = 0) -> pd.DataFrame:
    """Return timings of `method` on random images at one layer: this wrapper, forward passes alone, the library."""
    torch.manual_seed(seed)
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8)
    batches = [x[i:i + batch_size].float() / 255 for i in range(0, images, batch_size)]
    rows = []
    for stem in stems:
        model = build_model(stem).eval()

        def plainly():
            with check_method(method)(model=model, target_layers=[getattr(model, layer)]) as cam:
                for xb in batches:
                    cam(input_tensor=xb, targets=[ClassifierOutputTarget(0)] * len(xb))

        def forward_only():  # not a CAM: the cost of the forward passes alone, the floor for any CAM
            with torch.no_grad():
                for xb in batches:
                    model(xb)
        ways = {"helpers.compute_cams": lambda: compute_cams(model, x, layer, method, target=0, batch_size=batch_size),
                "forward only (floor)": forward_only, **({"library, plain": plainly} if plain else {})}
        for how, fn in ways.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BlankCamWarning)
                t = time.perf_counter()
                fn()
            rows.append({"stem": stem, "layer": layer, "map": "×".join(map(str, layer_map_sizes(model)[layer])),
                         "how": how, "images": images, "seconds": time.perf_counter() - t})
    return pd.DataFrame(rows).eval("images_per_s = images / seconds")


def main(argv=None) -> int:
    """Print the GradCAM benchmark (`python -m helpers.tools.cam_bench [--images N] [--layer L] [--stem S ...]`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.cam_bench", description=main.__doc__)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--layer", default="layer4", choices=CAM_LAYERS)
    ap.add_argument("--stem", nargs="+", default=["imagenet", "cifar"], choices=["imagenet", "cifar"])
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--method", default="GradCAM", choices=list(METHODS))
    ap.add_argument("--no-plain", action="store_true", help="skip the plain-library comparison")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    print(header(shlex.join(["python", "-m", "helpers.tools.cam_bench", *argv]), torch.device("cpu"),
                 f"torch {torch.__version__}, {torch.get_num_threads()} threads",
                 f"{args.images} random 32x32 images, {args.method} at {args.layer}, batches of {args.batch_size}"))
    df = benchmark(args.images, args.layer, tuple(args.stem), args.batch_size, args.method, not args.no_plain)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
