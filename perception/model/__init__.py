"""The multi-task network, shaped like torchvision's detection models: each part in its own module.

- ``backbone``: the timm feature extractor and where its starting weights load;
- ``neck``: the feature pyramid;
- ``heads``: the detection head, the shared dense decoder and their convolution blocks;
- ``box_coding``: the point grid and distances → boxes, read by training and by the exported graph;
- ``assign``: task-aligned label assignment for the detection loss;
- ``net``: ``MultiTaskNet``, which assembles them;
- ``weights``: the weights file (save, load for fine-tuning, load a trained network).

Non-maximum suppression is not part of the network: the exported graph appends ONNX's
(``perception.export.postprocess``), evaluation of a torch checkpoint runs torchvision's
(``perception.evaluate.reference``), and boxes map back to the source image in
``perception.contract.Letterbox``.
"""

from perception.model.assign import task_aligned_assign
from perception.model.backbone import create_backbone, load_backbone_weights
from perception.model.box_coding import distances_to_boxes, grid_points, raw_to_distances
from perception.model.heads import DenseDecoder, DetectionHead
from perception.model.neck import FeaturePyramid
from perception.model.net import IMAGE_MEAN, IMAGE_STD, MultiTaskNet
from perception.model.weights import WEIGHTS, load_trained, load_weights, save_weights

__all__ = [
    "IMAGE_MEAN",
    "IMAGE_STD",
    "WEIGHTS",
    "DenseDecoder",
    "DetectionHead",
    "FeaturePyramid",
    "MultiTaskNet",
    "create_backbone",
    "distances_to_boxes",
    "grid_points",
    "load_backbone_weights",
    "load_trained",
    "load_weights",
    "raw_to_distances",
    "save_weights",
    "task_aligned_assign",
]
