"""torchvision's ResNet-18 as the report used it, and the CIFAR-stem variant for CAMs."""

import torch
from torch import nn
from torchvision.models import resnet18

STAGES = ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")


def build_model(stem: str = "imagenet") -> nn.Module:
    """Return torchvision's resnet18 (random init); stem='cifar' swaps in a 3x3/1 conv and no max-pool."""
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"parameter 'stem' = {stem!r} is invalid; valid: imagenet | cifar")
    model = resnet18(num_classes=10)
    if stem == "cifar":
        # Keeps 32x32 at layer1 so layer4 is 4x4, not 1x1: a CAM there has something to show.
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def stage_shapes(model: nn.Module) -> list[tuple[str, tuple]]:
    """Return [(stage, output shape)] for one 32x32 image through the model (in eval mode, then restored)."""
    shapes, was_training = [], model.training
    hooks = [getattr(model, n).register_forward_hook(lambda m, i, o, n=n: shapes.append((n, tuple(o.shape[1:]))))
             for n in STAGES]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, 32, 32, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return shapes
