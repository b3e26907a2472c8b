# A tiny MiT-shaped backbone for the CPU demo and the tests; random initialisation.
model = dict(
    backbone=dict(type='mit_demo', pretrained=None, drop_path_rate=0.0),
    decode_head=dict(type='segformer', channels=64, dropout=0.0),
)
