"""Evaluation: confusion-matrix metrics under the benchmark protocols, whole/slide inference,
temporal consistency, reports, and the functions behind ``pipa-video eval | tc-report | predict``."""
from pipa_video.evaluation.inference import InferenceMode, predict_labels, predict_logits
from pipa_video.evaluation.metrics import Protocol, SegEvaluator
from pipa_video.evaluation.temporal import TemporalConsistency

__all__ = ["InferenceMode", "Protocol", "SegEvaluator", "TemporalConsistency", "predict_labels", "predict_logits"]
