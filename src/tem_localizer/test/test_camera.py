"""Camera observations: decoding image messages, encoding them, and pairing them with odometry."""
import io
import math

import numpy as np
import pytest
from PIL import Image

from tem_localizer import Localizer, LocalizerConfig
from tem_localizer.camera import (
    CODE_NORM,
    CameraEncoder,
    CompressedFrame,
    ImageError,
    RawImage,
    decode_compressed,
    decode_raw,
)
from tem_localizer.stream import SensorStream
from treeworld_schema import ConfigError

STAMP = 100_000_000
PIXELS = np.random.default_rng(0).integers(0, 256, size=(4, 6, 3), dtype=np.uint8)


def raw(pixels=PIXELS, encoding="rgb8", padding=0, **changes) -> RawImage:
    height, width = pixels.shape[:2]
    rows = np.zeros((height, pixels[0].nbytes + padding), np.uint8)
    rows[:, :pixels[0].nbytes] = np.ascontiguousarray(pixels).view(np.uint8).reshape(height, -1)
    fields = dict(encoding=encoding, height=height, width=width, step=rows.shape[1],
                  big_endian=False, data=rows.tobytes())
    return RawImage(**(fields | changes))


def compressed(format_name: str, pixels=PIXELS) -> CompressedFrame:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format_name)
    return CompressedFrame(f"rgb8; {format_name.lower()} compressed rgb8", buffer.getvalue())


def test_every_raw_encoding_gives_the_same_pixels():
    expected = PIXELS / 255.0
    np.testing.assert_allclose(decode_raw(raw()), expected, atol=1e-7)
    np.testing.assert_allclose(decode_raw(raw(PIXELS[..., ::-1].copy(), "bgr8")), expected,
                               atol=1e-7)
    np.testing.assert_allclose(decode_raw(raw(padding=5)), expected, atol=1e-7)  # padded rows
    grey = PIXELS[..., :1].copy()
    np.testing.assert_allclose(decode_raw(raw(grey, "mono8")), np.repeat(grey / 255.0, 3, -1),
                               atol=1e-7)
    depth = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6, 1)
    np.testing.assert_allclose(decode_raw(raw(depth.astype(">f4"), "32FC1", big_endian=True)),
                               np.repeat(depth, 3, -1))


def test_png_is_lossless_and_jpeg_close():
    np.testing.assert_allclose(decode_compressed(compressed("PNG")), PIXELS / 255.0, atol=1e-7)
    smooth = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (16, 1, 3))
    jpeg = decode_compressed(compressed("JPEG", smooth))
    assert np.abs(jpeg - smooth / 255.0).max() < 0.05


@pytest.mark.parametrize("image, kind, words", [
    (raw(encoding="yuv422"), "bad_encoding", "'yuv422' is not one of"),
    (raw(step=10), "bad_image_size", "rows of 10 bytes"),            # a row shorter than 6 x 3
    (raw(width=7), "bad_image_size", "image 4 x 7"),                 # data does not fill it
    (raw(data=raw().data[:-1]), "bad_image_size", "71 bytes of data"),        # truncated
    (raw(np.full((2, 2, 1), np.nan, np.float32), "32FC1"), "nonfinite_image", "NaN"),
    (CompressedFrame("jpeg", b"\xff\xd8\xff\xe0 not really a jpeg"), "corrupt_image",
     "cannot be decoded"),
    (CompressedFrame("theora", b"\x00" * 16), "bad_encoding", "neither JPEG nor PNG"),
])
def test_a_bad_image_names_what_is_wrong(image, kind, words):
    with pytest.raises(ImageError) as caught:
        decode_raw(image) if isinstance(image, RawImage) else decode_compressed(image)
    assert caught.value.kind == kind and words in str(caught.value)


def panorama(shift: int) -> np.ndarray:
    """A 16 x 128 panorama with a few bars, its columns rolled by ``shift``."""
    image = np.full((16, 128, 3), 0.6, np.float32)
    for column, colour in ((10, (0.1, 0.8, 0.1)), (50, (0.9, 0.1, 0.1)), (90, (0.1, 0.8, 0.1))):
        image[4:12, column:column + 4] = colour
    return np.roll(image, shift, axis=1)


@pytest.mark.parametrize("backbone", ["pixels", "mobilenet"])
def test_a_panorama_gives_the_same_code_from_any_heading(backbone):
    """Turning left by a quarter turn moves everything a quarter of the image to the right;
    the encoder turns it back by the heading, so the code is the place's, not the pose's."""
    encoder = CameraEncoder(64, backbone)
    codes = encoder(np.stack([panorama(0), panorama(32), panorama(0)]),
                    np.array([0.0, math.pi / 2, math.pi / 2]))
    assert codes.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), CODE_NORM, rtol=1e-5)
    np.testing.assert_allclose(codes[1], codes[0], atol=1e-4)
    assert np.linalg.norm(codes[2] - codes[0]) > 0.1 * CODE_NORM   # same image, other heading
    again = CameraEncoder(64, backbone)(panorama(0)[None], np.zeros(1))   # seeded: reproducible
    np.testing.assert_allclose(again[0], codes[0], atol=1e-5)


def camera_stream() -> SensorStream:
    config = LocalizerConfig(method="deadreckoning", sensory_embedding_dim=32, device="cpu",
                             observation="camera")
    return SensorStream(Localizer(config))


def test_camera_frames_pair_with_odometry_by_stamp_and_bad_ones_are_counted():
    """Camera at half the odometry rate (the odometry-only steps are unpaired; their motion
    comes with the next pair); a corrupt frame and one in an unknown frame are refused and
    counted, and the belief keeps every displacement."""
    s = camera_stream()
    frame = raw(panorama(0).__mul__(255).astype(np.uint8))
    s.odometry(0, "odom", [0.0, 0.0])
    assert s.camera(0, "base_link", frame)[0].step.skipped is None
    for step in range(1, 7):
        s.odometry(step * STAMP, "odom", [5.0 * step, 0.0])
        if step == 2:
            assert s.camera(step * STAMP, "base_link", CompressedFrame("jpeg", b"junk"))[0] \
                .step.skipped == "corrupt_image"
        elif step == 4:
            assert s.camera(step * STAMP, "camera_optical", frame)[0].step.skipped == \
                "unknown_frame"
        elif step == 6:
            assert s.camera(step * STAMP, "base_link", frame)[0].step.mean[0] == \
                pytest.approx(30.0)
    assert s.localizer.counters.skipped == {"corrupt_image": 1, "unknown_frame": 1,
                                            "unpaired": 5}


def test_a_weights_file_that_is_not_a_mobilenet_is_refused_by_name(tmp_path):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="camera_weights: .*weights.pt is not a "
                                          "mobilenet_v3_small state_dict"):
        CameraEncoder(16, "mobilenet", weights=str(junk))
    with pytest.raises(ConfigError, match="camera_weights: no such file"):
        LocalizerConfig(observation="camera", camera_encoder="mobilenet",
                        camera_weights=str(tmp_path / "none.pt")).check()
