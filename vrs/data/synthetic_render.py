"""Item images and texts of the procedural catalogue (see `vrs.data.synthetic`).

Every image is one shape of one colour and pattern on a plain background. Whole chunks of items are
rendered at once as (n, H, W) numpy arrays, so there is no Python loop over pixels; shapes are drawn
at 2x resolution and box-filtered down, which anti-aliases their edges. Texts are written from what
the (possibly noisy) text claims, never from the true attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

# Named colours and the RGB each is drawn with; saturated and far apart so that a small image
# encoder can tell them apart.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 165, 55),
    "teal": (20, 160, 160),
    "blue": (35, 75, 215),
    "purple": (130, 50, 175),
    "pink": (245, 110, 180),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")
PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "checked")
SIZES: tuple[str, ...] = ("small", "medium", "large")
SIZE_RADIUS = np.array([0.22, 0.3, 0.38])  # outer radius / image side, per size
# Closing sentences of descriptions; none names an attribute value, so text checks stay exact.
FILLERS: tuple[str, ...] = (
    "Made to last.",
    "Easy to pair with anything.",
    "A great gift.",
    "Part of our everyday range.",
    "",
)

_SUPERSAMPLE = 2
_CHUNK = 256  # items rendered per numpy batch
_STAR_INNER = 0.45  # inner / outer radius of the five-pointed star


def _circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # 0.85 rather than 1 keeps the square's area close to the circle's, so size stays comparable.
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Apex up (image y grows downwards): apex at v = -1, base at v = 0.7, half-width 1 at the base.
    return (v <= 0.7) & (np.abs(u) <= (v + 1.0) / 1.7)


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Polar form of a five-pointed star: fold the angle into the wedge between an outer vertex
    # (radius 1, angle 0) and the next inner vertex (radius r0, angle pi/5); the boundary there is
    # the straight edge rho(a) = r0 sin(pi/5) / (sin a + r0 sin(pi/5 - a)).
    wedge = np.pi / 5
    angle = np.arctan2(u, -v)  # 0 points straight up
    a = np.abs(np.mod(angle, 2 * wedge) - wedge)
    a = wedge - a  # distance in angle from the nearest outer vertex, in [0, pi/5]
    rho = _STAR_INNER * np.sin(wedge) / (np.sin(a) + _STAR_INNER * np.sin(wedge - a))
    return u * u + v * v <= rho * rho


def _diamond(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(u) * 1.25 + np.abs(v) <= 1.0


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.32) & (av <= 0.95)) | ((av <= 0.32) & (au <= 0.95))


_SHAPE_MASKS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "diamond": _diamond,
    "cross": _cross,
}


def _pattern_masks(pattern: np.ndarray, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """True where the secondary colour of the pattern shows. u, v: (n, H, W) in pixels."""
    out = np.zeros(u.shape, dtype=bool)
    if (sel := pattern == 1).any():  # stripes
        out[sel] = np.mod(u[sel] / period, 1.0) < 0.5
    if (sel := pattern == 2).any():  # dots
        cu, cv = np.mod(u[sel], period) - period / 2, np.mod(v[sel], period) - period / 2
        out[sel] = cu * cu + cv * cv <= (0.3 * period) ** 2
    if (sel := pattern == 3).any():  # checks
        out[sel] = (np.floor(u[sel] / period) + np.floor(v[sel] / period)) % 2 == 0
    return out


def render_images(
    *,
    colour: np.ndarray,
    shape: np.ndarray,
    pattern: np.ndarray,
    radius: np.ndarray,
    offset: np.ndarray,
    rotation: np.ndarray,
    background: np.ndarray,
    noise_sigma: np.ndarray,
    image_size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render n items as RGB images.

    Args:
        colour: (n,) index into `COLOURS`.
        shape: (n,) index into `SHAPES`.
        pattern: (n,) index into `PATTERNS`.
        radius: (n,) outer radius of the shape as a fraction of the image side.
        offset: (n, 2) centre offset (x, y) from the image centre, fraction of the image side.
        rotation: (n,) rotation in radians.
        background: (n, 3) background RGB in [0, 255].
        noise_sigma: (n,) standard deviation of the Gaussian pixel noise, in grey levels.
        image_size: side of the square output images.
        rng: source of the pixel noise (consumed in a fixed order, so output is deterministic).

    Returns:
        (n, image_size, image_size, 3) uint8.
    """
    n, s = len(colour), image_size * _SUPERSAMPLE
    grid = (np.arange(s, dtype=np.float32) + 0.5) / _SUPERSAMPLE  # pixel centres in output pixels
    centre = image_size * (0.5 + offset.astype(np.float32))  # (n, 2)
    dx = grid[None, None, :] - centre[:, 0, None, None]  # (n, 1, S)
    dy = grid[None, :, None] - centre[:, 1, None, None]  # (n, S, 1)
    cos = np.cos(rotation).astype(np.float32)[:, None, None]
    sin = np.sin(rotation).astype(np.float32)[:, None, None]
    u = cos * dx + sin * dy  # (n, S, S) shape-aligned coordinates, in output pixels
    v = cos * dy - sin * dx  # (n, S, S)
    r = (radius * image_size).astype(np.float32)[:, None, None]

    inside = np.zeros((n, s, s), dtype=bool)
    for k, name in enumerate(SHAPES):
        sel = shape == k
        if sel.any():
            inside[sel] = _SHAPE_MASKS[name](u[sel] / r[sel], v[sel] / r[sel])
    # Pattern period follows the image size so patterns stay visible at 32 px and at 224 px.
    secondary = _pattern_masks(pattern, u, v, period=max(3.0, image_size / 7))

    rgb = np.asarray(list(COLOURS.values()), dtype=np.float32)[colour]  # (n, 3)
    dark = rgb * 0.35  # stripes and checks: a dark shade of the same colour
    light = 0.2 * rgb + 0.8 * 255.0  # dots: near-white
    second = np.where((pattern == 2)[:, None], light, dark)  # (n, 3)
    fg = np.where(secondary[..., None], second[:, None, None], rgb[:, None, None])  # (n, S, S, 3)
    img = np.where(inside[..., None], fg, background.astype(np.float32)[:, None, None])  # (n, S, S, 3)
    img = img.reshape(n, image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE, 3).mean(axis=(2, 4))
    noise = (
        rng.standard_normal(img.shape, dtype=np.float32) * noise_sigma.astype(np.float32)[:, None, None, None]
    )
    return np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)  # (n, H, W, 3)


def save_png(image: np.ndarray, path: Path) -> None:
    """Write one (H, W, 3) uint8 image as PNG (PIL's PNG bytes depend only on the pixels)."""
    Image.fromarray(image).save(path, format="PNG", compress_level=6)


def render_catalogue(
    truth: pd.DataFrame, image_dir: Path, image_size: int, rng: np.random.Generator, progress: bool
) -> None:
    """Render every item of the truth table to ``image_dir/{item_id}.png``.

    Args:
        truth: one row per item with colour, shape, pattern, size (names) and the nuisance columns
            offset_x, offset_y, rotation_deg, background ((3,) arrays) and noise_sigma.
        image_dir: existing output folder.
        image_size: side of the square images.
        rng: source of the pixel noise.
        progress: whether to show a progress bar.
    """
    vocab = {"colour": tuple(COLOURS), "shape": SHAPES, "pattern": PATTERNS, "size": SIZES}
    codes = {attr: pd.Categorical(truth[attr], categories=v).codes for attr, v in vocab.items()}
    n = len(truth)
    bar = tqdm(total=n, desc="render", unit="img", disable=not progress)
    for lo in range(0, n, _CHUNK):
        sl = slice(lo, min(lo + _CHUNK, n))
        images = render_images(
            colour=codes["colour"][sl],
            shape=codes["shape"][sl],
            pattern=codes["pattern"][sl],
            radius=SIZE_RADIUS[codes["size"][sl]],
            offset=truth[["offset_x", "offset_y"]].to_numpy()[sl],
            rotation=np.deg2rad(truth["rotation_deg"].to_numpy()[sl]),
            background=np.stack(truth["background"].to_numpy()[sl]),
            noise_sigma=truth["noise_sigma"].to_numpy()[sl],
            image_size=image_size,
            rng=rng,
        )  # (n, H, W, 3)
        for item_id, image in zip(truth["item_id"].to_numpy()[sl], images, strict=True):
            save_png(image, image_dir / f"{item_id}.png")
        bar.update(len(images))
    bar.close()


def item_texts(truth: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Titles and descriptions written from the text claims.

    Args:
        truth: one row per item with shape, the claims text_colour, text_pattern, text_size ("" when
            the text omits the attribute), and template / filler indices choosing the wording.

    Returns:
        (titles, descriptions), e.g. "Red striped star (large)" and
        "A large star in red. It has a striped finish. A great gift."
    """
    titles, descriptions = [], []
    for colour, pattern, size, shape, template, filler in zip(
        truth["text_colour"], truth["text_pattern"], truth["text_size"], truth["shape"],
        truth["template"], truth["filler"], strict=True,
    ):  # fmt: skip
        words = " ".join(w for w in (colour, pattern, shape) if w)
        titles.append(words[0].upper() + words[1:] + (f" ({size})" if size else ""))
        noun = f"{size} {shape}" if size else shape
        if template == 0:
            first = f"A {noun} in {colour}." if colour else f"A {noun}."
        elif template == 1:
            first = f"This {noun} comes in {colour}." if colour else f"This {noun} is a customer favourite."
        else:
            first = " ".join(w for w in ("Meet our", size, colour, f"{shape}.") if w)
        second = f"It has a {pattern} finish." if pattern else "Simple and versatile."
        descriptions.append(" ".join(s for s in (first, second, FILLERS[filler]) if s))
    return titles, descriptions
