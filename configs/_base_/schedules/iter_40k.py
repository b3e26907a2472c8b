# DAFormer schedule: AdamW 6e-5 (head x10), warm-up 1500 iterations, poly(1.0), 40k iterations.
optimizer = dict(lr=6e-5, head_lr_mult=10.0, weight_decay=0.01)
schedule = dict(iters=40000, warmup_iters=1500, power=1.0)
# amp: bf16 autocast on CUDA (ours, for speed); DAFormer trains in fp32 (optimizer_config=None, no fp16
# hook): runtime.amp=False trains exactly that.
runtime = dict(log_interval=50, checkpoint_interval=4000, eval_interval=4000, amp=True)
