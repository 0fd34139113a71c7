"""Camera observations: image messages decoded without cv_bridge and encoded to a D-vector
(docs/design.md §13), so a robot's camera can stand where the smell stands.

Decoding takes the fields of a sensor_msgs/Image (rgb8, bgr8, mono8, 32FC1) or the bytes of a
sensor_msgs/CompressedImage (JPEG, PNG) and gives (H, W, 3) float32 in [0, 1]; whatever is
wrong with an image raises ``ImageError`` naming it. The encoder resizes a batch to the
configured size, turns a panorama so that its columns are map bearings (the same place gives
the same code whatever the robot's heading; only for 360-degree cameras) and maps it to D
numbers: ``pixels`` (area-averaged pixels) or ``mobilenet`` (torchvision's
mobilenet_v3_small's convolutional features up to stride 16; weights from a file, or fixed
seeded ones, since nothing is downloaded at run time), each through a fixed seeded random
projection to D.
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from treeworld_schema import ConfigError

# torchvision is imported where it is used, not here: importing it takes over a second (it
# loads torch._dynamo), which every localizer node and every `treeworld` command would pay

RAW_ENCODINGS = {"rgb8": (3, "u1"), "bgr8": (3, "u1"), "mono8": (1, "u1"), "32FC1": (1, "f4")}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# mobilenet_v3_small's first 7 feature blocks (stride 16, 40 channels). Mid-level features
# recognize places better than the last ones, and the later blocks (up to 576 channels on a
# 1 x 4 map, for a 16-row panorama) cost more than the rest: all 13 took 2.6 ms a frame on
# 2 cores, these 7 take 1.2
MOBILENET_BLOCKS = 7
# A code's norm: the smell's is of this order near trees, so the memory's and slam's
# thresholds (in code units) keep their meaning.
CODE_NORM = 20.0


class ImageError(ValueError):
    """An image that cannot be used; ``kind`` is the counter it is reported under."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RawImage:
    """A sensor_msgs/Image's fields as they came (from a node's message or a bag's)."""

    encoding: str
    height: int
    width: int
    step: int                # bytes per row
    big_endian: bool
    data: bytes

    @classmethod
    def of(cls, message) -> RawImage:
        return cls(message.encoding, message.height, message.width, message.step,
                   bool(message.is_bigendian), bytes(message.data))


@dataclass(frozen=True)
class CompressedFrame:
    """A sensor_msgs/CompressedImage's fields: ``format`` as image_transport writes it
    (e.g. "rgb8; jpeg compressed bgr8", or just "jpeg")."""

    format: str
    data: bytes

    @classmethod
    def of(cls, message) -> CompressedFrame:
        return cls(message.format, bytes(message.data))


def decode_raw(image: RawImage) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] (32FC1 as it is, repeated to 3 channels)."""
    if image.encoding not in RAW_ENCODINGS:
        raise ImageError("bad_encoding", f"image encoding {image.encoding!r} is not one of "
                         f"{', '.join(RAW_ENCODINGS)}")
    channels, kind = RAW_ENCODINGS[image.encoding]
    pixel_bytes = channels * np.dtype(kind).itemsize
    if image.height < 1 or image.width < 1 or image.step < image.width * pixel_bytes or \
            len(image.data) != image.step * image.height:
        raise ImageError("bad_image_size", f"{image.encoding} image {image.height} x "
                         f"{image.width} has rows of {image.step} bytes and {len(image.data)} "
                         f"bytes of data, expected rows of at least {image.width * pixel_bytes}"
                         f" bytes and {image.step * image.height} bytes")
    order = ">" if image.big_endian and kind == "f4" else "<"
    rows = np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)
    pixels = rows[:, :image.width * pixel_bytes].copy().view(order + kind)
    pixels = pixels.reshape(image.height, image.width, channels).astype(np.float32)
    if kind == "u1":
        pixels /= 255.0
    if not np.isfinite(pixels).all():
        raise ImageError("nonfinite_image", "image contains NaN or inf")
    if image.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    return pixels if channels == 3 else np.repeat(pixels, 3, axis=2)


def decode_compressed(frame: CompressedFrame) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from JPEG or PNG bytes."""
    codec = frame.format.lower()
    if "jpeg" not in codec and "jpg" not in codec and "png" not in codec:
        raise ImageError("bad_encoding", f"compressed image format {frame.format!r} is "
                         "neither JPEG nor PNG")
    import torchvision

    try:
        image = torchvision.io.decode_image(torch.frombuffer(bytearray(frame.data),
                                                             dtype=torch.uint8),
                                            mode=torchvision.io.ImageReadMode.RGB)
    except RuntimeError as error:
        raise ImageError("corrupt_image", f"compressed image ({frame.format}) cannot be "
                         f"decoded: {str(error).splitlines()[0]}") from None
    return (image.permute(1, 2, 0).float() / 255.0).numpy()


class CameraEncoder:
    """A batch of images (B, H, W, 3) and the headings they were taken at (B,) -> (B, D).

    Args:
        dim: D, the code length (the localizer's sensory_embedding_dim).
        backbone: ``pixels`` or ``mobilenet``.
        size: (rows, columns) every image is resized to first.
        panoramic: the image spans 360 degrees (columns are bearings, as the simulator's):
            turn it so its columns are map bearings.
        weights: a mobilenet_v3_small state_dict file ("" for fixed seeded weights).
    """

    def __init__(self, dim: int, backbone: str = "pixels", size: tuple[int, int] = (16, 128),
                 panoramic: bool = True, weights: str = "", device: str = "cpu", seed: int = 0):
        self.size, self.panoramic, self.device = size, panoramic, torch.device(device)
        generator = torch.Generator().manual_seed(seed)
        if backbone == "mobilenet":
            import torchvision

            with torch.random.fork_rng(devices=[]):   # seeded weights, the global RNG untouched
                torch.manual_seed(seed)
                network = torchvision.models.mobilenet_v3_small(weights=None)
            if weights:
                try:
                    network.load_state_dict(torch.load(Path(weights), map_location="cpu",
                                                       weights_only=True))
                except (OSError, RuntimeError, pickle.UnpicklingError) as error:
                    raise ConfigError(f"camera_weights: {weights} is not a mobilenet_v3_small "
                                      f"state_dict ({str(error).splitlines()[0]})") from None
            self.features = network.features[:MOBILENET_BLOCKS].eval().to(self.device)
            self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
            self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
            with torch.no_grad():
                width = self.features(torch.zeros(1, 3, *size, device=self.device)).numel()
        else:
            self.features = None
            width = 3 * (size[0] // 2) * (size[1] // 2)
        self.projection = (torch.randn(width, dim, generator=generator)
                           / math.sqrt(width)).to(self.device)

    @torch.no_grad()
    def __call__(self, images: np.ndarray, yaws: np.ndarray) -> np.ndarray:
        batch = torch.as_tensor(np.asarray(images, dtype=np.float32), device=self.device)
        batch = F.interpolate(batch.permute(0, 3, 1, 2), size=self.size, mode="area")
        if self.panoramic:
            # column c of a panorama looks at the bearing yaw + pi - 2 pi (c + 0.5) / W: turn
            # each image by its yaw so that column c looks at pi - 2 pi (c + 0.5) / W
            shifts = np.rint(np.asarray(yaws) / (2 * math.pi) * self.size[1]).astype(int)
            batch = torch.stack([torch.roll(image, -int(shift), dims=-1)
                                 for image, shift in zip(batch, shifts)])
        if self.features is None:
            features = F.avg_pool2d(batch, 2).flatten(1)
        else:
            features = self.features((batch - self.mean) / self.std).flatten(1)
        features = features - features.mean(dim=1, keepdim=True)
        codes = features @ self.projection
        codes = CODE_NORM * codes / codes.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return codes.cpu().numpy()
