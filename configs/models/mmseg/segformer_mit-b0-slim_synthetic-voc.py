# Embedded default: slim SegFormer (MiT-B0 at 1/2 width) for the generated VOC-layout dataset.
# mmseg config (mmengine syntax); inherits mmseg's own SegFormer-B0 model definition.
_base_ = ['mmseg::_base_/models/segformer_mit-b0.py']
num_classes = 7
class_names = ['background', 'disk', 'square', 'triangle', 'ring', 'star', 'bar']
model = dict(
    pretrained=None,
    backbone=dict(embed_dims=16, num_heads=[1, 2, 5, 8]),
    decode_head=dict(in_channels=[16, 32, 80, 128], channels=64, num_classes=num_classes),
    test_cfg=dict(mode='whole'))
