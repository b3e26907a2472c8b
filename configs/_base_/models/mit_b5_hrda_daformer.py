# HRDA around MiT-B5 + the DAFormer decoder (lhoyer/HRDA configs/hrda/gtaHR2csHR_hrda.py, "C" in
# docs/recipes.md). Every value below equals the schema default; they are spelled out with their sources.
_base_ = ['./mit_b5_daformer.py']
model = dict(
    type='hrda',  # type='HRDAEncoderDecoder', decode_head type='HRDAHead', single_scale_head='DAFormerHead'
    hrda=dict(
        context_scale=0.5,  # scales=[1, 0.5]: detail crop at full, context at half resolution
        detail_crop=(512, 512),  # hr_crop_size=[512, 512]
        crop_divisible=8,  # crop_coord_divisible=8 (output stride 4 x downscale factor 2)
        attention_classwise=True,  # attention_classwise=True
        detail_slide=True,  # hr_slide_inference=True (overlapping: windows 512, stride 256)
        test_window=(1024, 1024),  # test_cfg crop_size=[1024, 1024], batched_slide=True
        test_stride=(512, 512),  # test_cfg stride=[512, 512]
        detail_loss_weight=0.1,  # hr_loss_weight=0.1 (lambda_d)
    ),
)
