"""sensor_msgs/Image ⇄ ImageClassifier glue for the ``image_perception`` node (messages only, no rospy).

``ImagePerceptionHandler(classifier, timer, ...).handle(msg)`` decodes an Image (``ros.image.to_array``),
classifies it with ``inference.image.ImageClassifier`` and returns a ``Classification`` carrying the
input's header. Malformed or unusable images (bad sizes or step, unsupported encoding, a modality the
model was not trained on, a depth image without one valid pixel) raise ``MessageFormatError``, which
the node's worker counts as *rejected*.
"""

import numpy as np

from deep_perception.inference.image import ImageInputError
from deep_perception.msg import Classification, ModelInfo
from deep_perception.ros import image as ros_image
from deep_perception.ros.errors import MessageFormatError
from deep_perception.ros.node import copy_header

STAGES = ("decode", "preprocess", "inference", "encode")


def model_info_msg(classifier, model_name):
    """Latched description of the image model answering on the node's topics."""
    msg = ModelInfo()
    msg.model_name = model_name
    msg.task = "classification"
    msg.class_names = list(classifier.class_names)
    msg.input_spec = classifier.input_spec()
    msg.checkpoint_path = classifier.checkpoint_path
    msg.checkpoint_sha256 = classifier.checkpoint_sha256
    msg.device = f"{classifier.device} ({classifier.backend} conv)"
    return msg


def classification_msg(header, prediction, class_names, threshold=0.0):
    """Classification from an ImagePrediction; class_id -1 / 'unknown' when its score < ``threshold``."""
    msg = Classification()
    msg.header = copy_header(header)
    below = prediction.score < threshold
    msg.class_id = -1 if below else int(prediction.class_id)
    msg.label = "unknown" if below else class_names[prediction.class_id]
    msg.score = float(prediction.score)
    msg.top_k_ids = list(prediction.top_k_ids)
    msg.top_k_scores = list(prediction.top_k_scores)
    msg.probabilities = np.asarray(prediction.probabilities, np.float32).tolist()
    return msg


class ImagePerceptionHandler:
    """Turns one Image into a Classification with ``classifier``; times stages into ``timer``."""

    def __init__(self, classifier, timer, threshold=0.0, top_k=3):
        self.classifier = classifier
        self.timer = timer
        self.threshold = float(threshold)
        self.top_k = int(top_k)

    def handle(self, msg):
        with self.timer.stage("decode"):
            array = ros_image.to_array(msg)  # MessageFormatError on malformed messages
        try:
            (pred,) = self.classifier.classify([array], [msg.encoding], top_k=self.top_k)
        except ImageInputError as exc:
            raise MessageFormatError(str(exc)) from exc
        self.timer.record("preprocess", self.classifier.last_timing["preprocess_s"])
        self.timer.record("inference", self.classifier.last_timing["forward_s"])
        with self.timer.stage("encode"):
            return classification_msg(msg.header, pred, self.classifier.class_names, self.threshold)
