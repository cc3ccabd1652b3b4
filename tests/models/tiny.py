"""A tiny mmseg EncoderDecoder config (ResNetV1c-18 at width 8 + FCN head) for fast adapter tests."""

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def tiny_config(num_classes: int = 5, mode: str = "whole", crop_size=(32, 32), stride=(24, 24)) -> dict:
    norm = dict(type="SyncBN", requires_grad=True)  # the adapter must turn this into BN
    return dict(
        model=dict(
            type="EncoderDecoder",
            data_preprocessor=dict(type="SegDataPreProcessor", mean=MEAN, std=STD, bgr_to_rgb=True,
                                   pad_val=0, seg_pad_val=255),
            pretrained="open-mmlab://resnet18_v1c",  # must be cleared: building never downloads
            backbone=dict(type="ResNetV1c", depth=18, base_channels=8, stem_channels=8, num_stages=4,
                          out_indices=(0, 1, 2, 3), dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                          norm_cfg=norm, norm_eval=False, style="pytorch", contract_dilation=True,
                          init_cfg=dict(type="Pretrained", checkpoint="open-mmlab://resnet18_v1c")),
            decode_head=dict(type="FCNHead", in_channels=64, in_index=3, channels=16, num_convs=1,
                             concat_input=False, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm,
                             align_corners=False,
                             loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0)),
            train_cfg=dict(),
            test_cfg=dict(mode=mode, crop_size=crop_size, stride=stride),
        ),
        class_names=[f"c{i}" for i in range(num_classes)],
    )
