"""The built-in synthetic driving world: procedural 3-D scenes with exact labels from geometry.

``SyntheticDataset`` renders frames on demand; ``perception data synth`` writes them to disk and
``SynthFolderDataset`` reads such a folder back. See docs/synthetic-data.md.
"""

from perception.data.synthetic.dataset import SPLIT_SEEDS, SyntheticDataset, frame_id, make_scene
from perception.data.synthetic.export import SynthFolderDataset
from perception.data.synthetic.renderer import Frame, render
from perception.data.synthetic.scene import Scene, sample_scene

__all__ = [
    "SPLIT_SEEDS",
    "Frame",
    "Scene",
    "SynthFolderDataset",
    "SyntheticDataset",
    "frame_id",
    "make_scene",
    "render",
    "sample_scene",
]
