"""Heat map, label and score drawn on the frame."""

from __future__ import annotations

import numpy as np

from pipelines.overlay import annotate, heatmap


def test_heatmap_is_resized_and_hot_where_the_map_is_high() -> None:
    anomaly_map = np.zeros((8, 8), dtype=np.float32)
    anomaly_map[:, 4:] = 1.0
    colours = heatmap(anomaly_map, (80, 40))
    assert colours.shape == (40, 80, 3)
    cold, hot = colours[20, 5], colours[20, 75]
    assert cold[0] > cold[2] and hot[2] > hot[0]  # JET: blue for 0, red for 1 (BGR)


def test_annotate_blends_the_map_and_draws_a_banner_without_touching_the_input() -> None:
    frame = np.full((120, 160, 3), 60, dtype=np.uint8)
    anomaly_map = np.ones((16, 16), dtype=np.float32)
    out = annotate(frame, anomaly_map, 0.91, True)
    assert out.shape == frame.shape and out is not frame
    assert (frame == 60).all()
    bottom_right = out[110, 150].astype(int)
    assert bottom_right[2] > 60 > bottom_right[0]  # red tint from the hot map
    banner = out[2, 2].astype(int)
    assert banner[2] > 150 and banner[1] < 100  # red banner for ANOMALY


def test_normal_frames_get_a_green_banner_and_no_map_is_fine() -> None:
    frame = np.full((120, 160, 3), 128, dtype=np.uint8)
    out = annotate(frame, None, 0.12, False)
    assert (out[100:, :] == 128).all()  # nothing blended below the banner
    banner = out[2, 2].astype(int)
    assert banner[1] > banner[2] and banner[1] > banner[0]
