"""The contract: typed specs for data, models, training, transfer and studies, validated once, at the edge.

The UI, the CLI, the queue and the engine all speak these. A spec has a canonical JSON form and a
content hash, so the same spec is never computed twice. This package must not import torch: the
web tier imports it on machines without a GPU stack.
"""

from backend.specs.base import Spec, SpecError, canonical_json, parse, set_field, spec_error, spec_hash
from backend.specs.data import (
    TORCHVISION_SETS, BlockShuffle, Blur, ClassSelection, Contrast, DataSpec, DigitsSource, FolderSource,
    GaussianNoise, Inversion, PixelShuffle, Rotation, Shift, Source, SyntheticSource, TorchvisionSource,
    check_block_sizes,
)
from backend.specs.models import ConvNetSpec, MLPSpec, ModelSpec, ResNetSpec, ViTSpec, unit_names
from backend.specs.training import TrainJobSpec, TrainSpec
from backend.specs.transfer import TREATMENTS, TransferJobSpec, TransferSpec
from backend.specs.probes import (
    SCOPES, ChenJobSpec, DomainGapJobSpec, GapSettings, ProbeImages, ScoresJobSpec, ScoreSettings, SharpnessJobSpec,
    SharpnessSettings, SimilarityJobSpec, SimilaritySettings, StudyProbes,
)
from backend.specs.landscape import (
    CriticalityJobSpec, CriticalitySettings, InterpolationJobSpec, InterpolationSettings, PlaneJobSpec, PlaneSettings,
    SmoothnessJobSpec, SmoothnessSettings,
)
from backend.specs.cross import CROSS_TREATMENTS, CrossDatasetSpec, CrossProbes, InputFormat, TargetTask
from backend.specs.basins import BasinProbes, BasinsSpec
from backend.specs.presets import PRESETS, Preset
from backend.specs.studies import YosinskiSpec

UNIONS = (Source, Shift, ModelSpec)  # discriminated unions, for error messages

__all__ = [
    "Spec", "SpecError", "canonical_json", "parse", "set_field", "spec_error", "spec_hash",
    "TORCHVISION_SETS", "BlockShuffle", "Blur", "ClassSelection", "Contrast", "DataSpec", "DigitsSource",
    "FolderSource", "GaussianNoise", "Inversion", "PixelShuffle", "Rotation", "Shift", "Source",
    "SyntheticSource", "TorchvisionSource", "check_block_sizes",
    "ConvNetSpec", "MLPSpec", "ModelSpec", "ResNetSpec", "ViTSpec", "unit_names",
    "TrainJobSpec", "TrainSpec", "TREATMENTS", "TransferJobSpec", "TransferSpec", "PRESETS", "Preset", "YosinskiSpec",
    "SCOPES", "ProbeImages", "SharpnessJobSpec", "SharpnessSettings", "SimilarityJobSpec", "SimilaritySettings",
    "StudyProbes", "ChenJobSpec", "DomainGapJobSpec", "GapSettings", "ScoresJobSpec", "ScoreSettings",
    "CROSS_TREATMENTS", "CrossDatasetSpec", "CrossProbes", "InputFormat", "TargetTask",
    "CriticalityJobSpec", "CriticalitySettings", "InterpolationJobSpec", "InterpolationSettings", "PlaneJobSpec",
    "PlaneSettings", "SmoothnessJobSpec", "SmoothnessSettings", "BasinProbes", "BasinsSpec",
]
