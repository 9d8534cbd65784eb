"""GradCAM timing benchmark (`python -m helpers.cam`): this wrapper, the forward passes alone, the library plainly."""
from __future__ import annotations

import os
import time
import warnings

import pandas as pd
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..models import build_model
from .settings import set_threads
from .wrappers import CAM_LAYERS, METHODS, BlankCamWarning, check_method, compute_cams, layer_map_sizes


def benchmark(images: int = 1000, layer: str = "layer4", stems=("imagenet", "cifar"), batch_size: int = 250,
              method: str = "GradCAM", plain: bool = True, seed: int = 0) -> pd.DataFrame:
    """Return timings of `method` over `images` random 32x32 images at one layer: this wrapper, the forward
    passes alone (the floor), and the library called plainly (every weight gradient computed).
    Weights do not change the cost, so none are loaded."""
    torch.manual_seed(seed)
    x = torch.randint(0, 256, (images, 3, 32, 32), dtype=torch.uint8)
    rows = []
    for stem in stems:
        model = build_model(stem).eval()
        size = layer_map_sizes(model)[layer]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BlankCamWarning)
            t = time.perf_counter()
            compute_cams(model, x, layer, method, target=0, batch_size=batch_size)
            rows.append({"stem": stem, "layer": layer, "map": f"{size[0]}×{size[1]}", "how": "helpers.compute_cams",
                         "images": images, "seconds": time.perf_counter() - t})
            t = time.perf_counter()
            with torch.no_grad():  # not a CAM: the cost of the forward passes alone, the floor for any CAM
                for i in range(0, images, batch_size):
                    model(x[i:i + batch_size].float() / 255)
            rows.append({"stem": stem, "layer": layer, "map": f"{size[0]}×{size[1]}", "how": "forward only (floor)",
                         "images": images, "seconds": time.perf_counter() - t})
            if plain:
                t = time.perf_counter()
                with check_method(method)(model=model, target_layers=[getattr(model, layer)]) as cam:
                    for i in range(0, images, batch_size):
                        xb = x[i:i + batch_size].float() / 255
                        cam(input_tensor=xb, targets=[ClassifierOutputTarget(0)] * len(xb))
                rows.append({"stem": stem, "layer": layer, "map": f"{size[0]}×{size[1]}", "how": "library, plain",
                             "images": images, "seconds": time.perf_counter() - t})
    df = pd.DataFrame(rows)
    df["images_per_s"] = df["images"] / df["seconds"]
    return df


def main(argv=None) -> int:
    """Print the GradCAM benchmark (`python -m helpers.cam [--images N] [--layer L] [--stem S ...]`)."""
    import argparse
    import platform
    ap = argparse.ArgumentParser(prog="python -m helpers.cam", description=main.__doc__)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--layer", default="layer4", choices=CAM_LAYERS)
    ap.add_argument("--stem", nargs="+", default=["imagenet", "cifar"], choices=["imagenet", "cifar"])
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--method", default="GradCAM", choices=list(METHODS))
    ap.add_argument("--no-plain", action="store_true", help="skip the plain-library comparison")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"{args.method}, {args.images} images at {args.layer}, batches of {args.batch_size}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average before: {load[0]:.2f}")
    df = benchmark(args.images, args.layer, tuple(args.stem), args.batch_size, args.method, not args.no_plain)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
