"""LeNet-5 image tower: the smallest classic CNN, a floor for how much pixels help."""

from __future__ import annotations

from torch import Tensor, nn

from vrs.encoders.base import ImageEncoder, Towers, check_image_size
from vrs.encoders.pixels import resize_normalize
from vrs.encoders.toy import ToyTextEncoder


class LeNetImageEncoder(ImageEncoder):
    """LeNet-5 (LeCun et al., 1998) on 32x32 RGB: conv5-pool-conv5-pool-fc120-fc84.

    Kept classic (tanh, average pooling) so results are comparable with the textbook network; only
    the input has 3 channels instead of 1. The last layer has no squashing so the fusion layer sees
    an unbounded feature, as with every other tower.

    Args:
        out_dim: Size of the last fully connected layer (84 in the original).
    """

    image_size = 32
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, out_dim: int = 84) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, kernel_size=5),  # (n, 6, 28, 28)
            nn.Tanh(),
            nn.AvgPool2d(2),  # (n, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # (n, 16, 10, 10)
            nn.Tanh(),
            nn.AvgPool2d(2),  # (n, 16, 5, 5)
        )
        self.head = nn.Sequential(
            nn.Flatten(),  # (n, 400)
            nn.Linear(16 * 5 * 5, 120),
            nn.Tanh(),
            nn.Linear(120, out_dim),
        )

    def forward(self, images: Tensor) -> Tensor:
        """(n, 3, H, W) uint8 or float in [0, 1] -> (n, out_dim)."""
        x = resize_normalize(images, self.image_size, self.mean, self.std)  # (n, 3, 32, 32)
        return self.head(self.features(x))  # (n, out_dim)


def build_lenet_towers(image_dim: int = 84, text_dim: int = 32, image_size: int | None = None) -> Towers:
    """Build a LeNet-5 image tower and a toy hashed bag-of-words text tower.

    Args:
        image_dim: Output size of the LeNet image tower.
        text_dim: Output size of the text tower.
        image_size: the declared input side (LeNet reads 32); None: not checked.

    Returns:
        Towers with both towers set.
    """
    image = LeNetImageEncoder(out_dim=image_dim)
    check_image_size(image, image_size, "LeNet")
    return Towers(image=image, text=ToyTextEncoder(out_dim=text_dim))
