# DAFormer self-training: EMA teacher, ClassMix, confidence-weighted pseudo-labels.
uda = dict(
    method='self_training',
    ema_alpha=0.999,
    pseudo_threshold=0.968,
    fd_weight=0.005,  # ImageNet feature distance; only active with pretrained backbone weights
)
