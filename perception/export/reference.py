"""Where ``load_trained``, ``reference_outputs`` and ``pack_detections`` were first defined; they
now live below export, in ``perception.model.weights`` and ``perception.evaluate.reference``, and
this module keeps the old import path working."""

from perception.evaluate.reference import pack_detections, reference_outputs
from perception.model.weights import load_trained

__all__ = ["load_trained", "pack_detections", "reference_outputs"]
