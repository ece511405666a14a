"""Data for the part-aware tracker: PoseTrack18, CrowdHuman and MOT17 readers, downloads, clip sampler,
synthetic scenes.

Every box is ``(x, y, w, h)`` in pixels of the original frame (PoseTrack18/COCO ``bbox``).
"""

from adaptrack.track.data.clips import ClipDataset, collate_clips
from adaptrack.track.data.crowdhuman import read_crowdhuman, read_crowdhuman_ignore_regions
from adaptrack.track.data.downloads import DATASETS, download
from adaptrack.track.data.frames import load_frame, resize_frame
from adaptrack.track.data.mot17 import read_mot17, read_mot17_dir
from adaptrack.track.data.posetrack import POSETRACK_KEYPOINTS, read_posetrack, read_posetrack_dir
from adaptrack.track.data.synth import PRESETS, TARGET_TRACK, GenerationReport, generate, generate_dataset
from adaptrack.track.data.types import Box, Clip, ClipBatch, FrameAnn, PartSpec, PersonAnn, SequenceAnn

__all__ = [
    "DATASETS", "POSETRACK_KEYPOINTS", "PRESETS", "TARGET_TRACK", "Box", "Clip", "ClipBatch", "ClipDataset",
    "FrameAnn", "GenerationReport", "PartSpec", "PersonAnn", "SequenceAnn", "collate_clips", "download", "generate",
    "generate_dataset", "load_frame", "read_crowdhuman", "read_crowdhuman_ignore_regions", "read_mot17",
    "read_mot17_dir", "read_posetrack", "read_posetrack_dir", "resize_frame",
]
