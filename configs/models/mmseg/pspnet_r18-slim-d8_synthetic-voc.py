# Embedded default: slim PSPNet (ResNetV1c-18 D8 at 1/4 width) for the generated VOC-layout dataset.
# mmseg config (mmengine syntax); inherits mmseg's own PSPNet model definition.
_base_ = ['mmseg::_base_/models/pspnet_r50-d8.py']
num_classes = 7
class_names = ['background', 'disk', 'square', 'triangle', 'ring', 'star', 'bar']
model = dict(
    pretrained=None,
    backbone=dict(depth=18, stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=128, channels=32, num_classes=num_classes),
    auxiliary_head=None,
    test_cfg=dict(mode='whole'))
