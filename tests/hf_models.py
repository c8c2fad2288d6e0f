"""Tiny Transformers models built from configs, as scripts run in the transformers env.

Each script takes an output folder and saves model + processor with ``save_pretrained``.
"""

#: ``<out>/dfine`` (tiny HGNetV2 backbone) and ``<out>/detr`` (tiny ResNet backbone).
DETECTION_MODELS = """
import sys
from pathlib import Path
from transformers import (DetrConfig, DetrForObjectDetection, DetrImageProcessor, DFineConfig, DFineForObjectDetection,
                          HGNetV2Config, ResNetConfig, RTDetrImageProcessor)
root = Path(sys.argv[1])
backbone = HGNetV2Config(
    stage_in_channels=[16, 32, 64, 128], stage_mid_channels=[16, 16, 32, 64], stage_out_channels=[32, 64, 128, 128],
    stage_num_blocks=[1, 1, 1, 1], stage_downsample=[False, True, True, True],
    stage_light_block=[False, False, True, True], stage_kernel_size=[3, 3, 5, 5], stage_numb_of_layers=[2, 2, 2, 2],
    embedding_size=16, hidden_sizes=[32, 64, 128, 128], depths=[1, 1, 1, 1],
    out_features=["stage2", "stage3", "stage4"], out_indices=[2, 3, 4], stem_channels=[3, 16, 16])
dfine = DFineConfig(backbone_config=backbone, encoder_hidden_dim=32, encoder_in_channels=[64, 128, 128],
                    encoder_ffn_dim=64, encoder_attention_heads=2, d_model=32, num_queries=30,
                    decoder_in_channels=[32, 32, 32], decoder_ffn_dim=64, decoder_n_points=[3, 6, 3], decoder_layers=2,
                    decoder_attention_heads=2, num_denoising=0, depth_mult=0.34, hidden_expansion=0.5, num_labels=5)
DFineForObjectDetection(dfine).save_pretrained(root / "dfine")
RTDetrImageProcessor(size={"height": 64, "width": 64}).save_pretrained(root / "dfine")
detr = DetrConfig(backbone_config=ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 32, 64], depths=[1, 1, 1, 1],
                                               layer_type="basic", out_features=["stage4"]),
                  d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
                  encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10, num_labels=5)
DetrForObjectDetection(detr).save_pretrained(root / "detr")
DetrImageProcessor(size={"shortest_edge": 48, "longest_edge": 64}).save_pretrained(root / "detr")
"""
