"""sensor_msgs/Image ⇄ ImageClassifier glue for the ``image_perception`` node (messages only, no rospy).

``ImagePerceptionHandler(classifier, timer, ...).handle(msg)`` decodes an Image (``ros.image.to_array``),
classifies it with ``inference.image.ImageClassifier`` and returns a ``Classification`` carrying the
input's header. Malformed or unusable images (bad sizes or step, unsupported encoding, a modality the
model was not trained on, a depth image without one valid pixel) raise ``MessageFormatError``, which
the node's worker counts as *rejected*.
"""

from deep_perception.inference.image import ImageInputError
from deep_perception.ros import image as ros_image
from deep_perception.ros import messages
from deep_perception.ros.errors import MessageFormatError

STAGES = ("decode", "preprocess", "inference", "encode")


def model_info_msg(classifier, model_name, stamp=None):
    """Latched description of the image model answering on the node's topics (shared builder)."""
    return messages.model_info_msg(stamp, model_name, "classification", classifier.class_names,
                                   classifier.input_spec(), classifier.checkpoint_path,
                                   classifier.checkpoint_sha256,
                                   f"{classifier.device} ({classifier.backend} conv)")


def classification_msg(header, prediction, class_names, threshold=0.0):
    """Classification from an ImagePrediction; class_id -1 / 'unknown' when its score < ``threshold``."""
    return messages.classification_msg(header, prediction.probabilities, class_names,
                                       top_k=len(prediction.top_k_ids), score_threshold=threshold)


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
