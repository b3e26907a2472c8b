"""The one place the ``uda`` config is translated into a training method.

Base self-training reads the flat ``uda`` keys; each term (``uda.terms.TERMS``) is built from its own
section ``uda.<term.name>`` by its ``from_config`` and is left out when its weight is 0 (and, for
terms that need a teacher, under ``uda.method='source_only'``).
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping

from torch import Tensor

from pipa_video.data.classes import get_class_set
from pipa_video.models.build import build_segmentor
from pipa_video.uda.hrda_loss import CEAverage
from pipa_video.uda.mix import AugDraw, MixClasses
from pipa_video.uda.pseudo import PseudoWeight
from pipa_video.uda.step import BaseSettings, Method, SelfTrainingMethod
from pipa_video.uda.student import StudentNet
from pipa_video.uda.teacher import TeacherNorm, ema_horizon_warning
from pipa_video.uda.terms import TERMS, BuildContext, Term

logger = logging.getLogger(__name__)

Gather = Callable[[Tensor], Tensor]


def build_terms(cfg: Mapping, *, gather: Gather | None = None) -> list[Term]:
    """The enabled terms, in ``TERMS`` order, each from its section ``uda.<name>``."""
    class_set = get_class_set(cfg["class_set"])
    build = BuildContext(cfg=cfg, num_classes=class_set.num_classes, class_names=tuple(class_set.names),
                         self_training=Method(cfg["uda"]["method"]) is Method.SELF_TRAINING, gather=gather)
    terms = [term_cls.from_config(cfg["uda"][term_cls.name], build) for term_cls in TERMS]
    return [t for t in terms if t is not None]


def base_settings(cfg: Mapping) -> BaseSettings:
    uda = cfg["uda"]
    return BaseSettings(
        method=Method(uda["method"]),
        pseudo_threshold=uda["pseudo_threshold"],
        pseudo_weight=PseudoWeight(uda["pseudo_weight"]),
        pseudo_ignore_top=uda["pseudo_ignore_top"],
        pseudo_ignore_bottom=uda["pseudo_ignore_bottom"],
        mix_classes=MixClasses(uda["classmix_classes"]),
        source_ce_average=CEAverage(uda["source_ce_average"]),
        teacher_norm=TeacherNorm(uda["teacher_norm"]),
        aug_draw=AugDraw(uda["strong_aug_draw"]),
        jitter_strength=uda["color_jitter_strength"],
        jitter_prob=uda["color_jitter_prob"],
        blur=uda["blur"],
        mean=tuple(cfg["data"]["mean"]),
        std=tuple(cfg["data"]["std"]),
        detail_loss_weight=cfg["model"]["hrda"]["detail_loss_weight"],
    )


def build_method(cfg: Mapping, *, gather: Gather | None = None) -> SelfTrainingMethod:
    """Student, teacher, terms and settings from a validated config.

    ``gather(tensor) -> tensor`` concatenates a tensor over ranks along dim 0 (the engine passes
    ``engine.dist.all_gather_cat`` when distributed, None otherwise); the memory bank uses it.
    """
    class_set = get_class_set(cfg["class_set"])
    terms = build_terms(cfg, gather=gather)
    proj_dims = {head: dim for term in terms for head, dim in term.heads().items()}
    student = StudentNet(segmentor=build_segmentor(cfg["model"], num_classes=class_set.num_classes),
                         proj_dims=proj_dims, norm=cfg["model"]["projection"]["norm"])
    settings = base_settings(cfg)
    if settings.method is Method.SELF_TRAINING:
        warning = ema_horizon_warning(max_alpha=cfg["uda"]["ema_alpha"], iters=cfg["schedule"]["iters"])
        if warning:
            logger.warning(warning)
    return SelfTrainingMethod(student=student, settings=settings, ema_alpha=cfg["uda"]["ema_alpha"], terms=terms)
