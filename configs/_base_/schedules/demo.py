# CPU demo schedule: 400 iterations of a tiny, randomly initialised model on 128x128 crops.
optimizer = dict(lr=6e-4, head_lr_mult=10.0, weight_decay=0.01)  # 10x the paper lr: random init, short run
schedule = dict(iters=400, warmup_iters=30, power=1.0)  # paper: 40k iterations, 1500 warm-up
runtime = dict(log_interval=50, checkpoint_interval=100, eval_interval=100, amp=False)
