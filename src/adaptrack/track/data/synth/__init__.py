"""Synthetic crowd scenes in PoseTrack18 format: the embedded default dataset (no download)."""

from adaptrack.track.data.synth.backgrounds import median_background
from adaptrack.track.data.synth.scene import PRESETS, REALISM, TARGET_TRACK, SceneConfig
from adaptrack.track.data.synth.writer import GenerationReport, generate, generate_dataset, scene_config

__all__ = ["PRESETS", "REALISM", "TARGET_TRACK", "GenerationReport", "SceneConfig", "generate", "generate_dataset",
           "median_background", "scene_config"]
