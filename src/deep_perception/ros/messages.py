"""Builders for deep_perception's own messages, shared by the perception nodes."""

import numpy as np

from deep_perception.ros.node import copy_header


def classification_msg(header, probabilities, class_names, top_k=3, score_threshold=0.0):
    """A Classification for one input from its probability vector (header copied from the input)."""
    from deep_perception.msg import Classification

    probs = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    if probs.shape[0] != len(class_names):
        raise ValueError(f"{probs.shape[0]} probabilities for {len(class_names)} classes")
    order = np.argsort(-probs, kind="stable")[: max(1, int(top_k))]
    msg = Classification()
    msg.header = copy_header(header)
    best = int(order[0])
    msg.score = float(probs[best])
    if msg.score >= score_threshold:
        msg.class_id, msg.label = best, class_names[best]
    else:
        msg.class_id, msg.label = -1, "unknown"
    msg.top_k_ids = [int(i) for i in order]
    msg.top_k_scores = [float(probs[i]) for i in order]
    msg.probabilities = probs.tolist()
    return msg


def model_info_msg(stamp, model_name, task, class_names, input_spec, checkpoint_path="", checkpoint_sha256="",
                   device="cpu", frame_id=""):
    """The latched ModelInfo a perception node publishes once at start-up."""
    from deep_perception.msg import ModelInfo

    msg = ModelInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.model_name = model_name
    msg.task = task
    msg.class_names = list(class_names)
    msg.input_spec = input_spec
    msg.checkpoint_path = str(checkpoint_path)
    msg.checkpoint_sha256 = checkpoint_sha256
    msg.device = str(device)
    return msg
