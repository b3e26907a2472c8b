"""The step's add-ons, one term each (``base.Term``), in the order the step runs them.

``TERMS`` fixes that order: within a stage, terms add their losses (and request their projection
heads and teacher views) in this order, so the random draws, the summation and the gradient
accumulation of a run are fixed. A new term is a module here, one entry in ``TERMS`` and its config
section ``uda.<name>``; it changes no other term.
"""
from pipa_video.uda.terms.base import (Batch, BuildContext, ForwardNeeds, StepContext, Term, TermLoss,
                                       teacher_projection)
from pipa_video.uda.terms.feature_distance import FeatureDistanceTerm
from pipa_video.uda.terms.mic import MaskedConsistencyTerm, MICImages
from pipa_video.uda.terms.patch import PatchContrastTerm, PatchViews
from pipa_video.uda.terms.pixel import PixelContrastTerm, pixel_term_weight
from pipa_video.uda.terms.temporal import Reference, TemporalContrastTerm

TERMS: tuple[type[Term], ...] = (FeatureDistanceTerm, TemporalContrastTerm, PixelContrastTerm, PatchContrastTerm,
                                 MaskedConsistencyTerm)

__all__ = [
    "TERMS", "Batch", "BuildContext", "FeatureDistanceTerm", "ForwardNeeds", "MICImages", "MaskedConsistencyTerm",
    "PatchContrastTerm", "PatchViews", "PixelContrastTerm", "Reference", "StepContext", "TemporalContrastTerm",
    "Term", "TermLoss", "pixel_term_weight", "teacher_projection",
]
