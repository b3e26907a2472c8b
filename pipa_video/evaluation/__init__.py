"""Evaluation: evaluators with one protocol (reset / process / evaluate) fed by one inference loop,
confusion-matrix metrics under the benchmark protocols, whole/slide inference, temporal consistency,
reports, and the functions behind ``pipa-video eval | tc-report | predict``."""
from pipa_video.evaluation.evaluator import DatasetEvaluator, DatasetEvaluators, SemSegEvaluator, TemporalEvaluator
from pipa_video.evaluation.inference import InferenceMode, predict_labels, predict_logits
from pipa_video.evaluation.loop import Comm, Predictor, SavedPredictions, inference_on_dataset
from pipa_video.evaluation.metrics import Protocol, SegEvaluator
from pipa_video.evaluation.temporal import TemporalConsistency

__all__ = ["Comm", "DatasetEvaluator", "DatasetEvaluators", "InferenceMode", "Predictor", "Protocol",
           "SavedPredictions", "SegEvaluator", "SemSegEvaluator", "TemporalConsistency", "TemporalEvaluator",
           "inference_on_dataset", "predict_labels", "predict_logits"]
