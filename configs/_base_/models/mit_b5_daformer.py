# SegFormer MiT-B5 backbone (timm pvt_v2 with the MiT layout) + DAFormer decoder (paper setting).
model = dict(
    backbone=dict(
        type='mit_b5',
        # Official ImageNet-1k weights; convert once with data_tools/convert_mit_checkpoint.py or use
        # the official mit_b5.pth directly. Nothing is downloaded at run time.
        pretrained='pretrained/mit_b5.pth',
        drop_path_rate=0.1,
    ),
    decode_head=dict(type='daformer', channels=256, dropout=0.1),
)
