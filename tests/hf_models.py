"""Tiny Transformers models built from configs, as scripts run in the transformers env.

Each script takes an output folder and saves model + processor with ``save_pretrained``.
"""

#: ``python -c BUILD_EACH JSON``: for each ``[script, out]``, ``script`` run as ``python -c script out`` would run it,
#: in this one process (transformers imported once).
BUILD_EACH = """
import json, sys
for script, out in json.loads(sys.argv[1]):
    sys.argv = ["-c", out]
    exec(script, {"__name__": "__main__"})
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

#: ``<out>/segformer``, ``<out>/mask2former`` and ``<out>/eomt`` (three classes).
SEGMENTATION_MODELS = """
import sys
from pathlib import Path
from transformers import (EomtConfig, EomtForUniversalSegmentation, EomtImageProcessor, Mask2FormerConfig,
                          Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SegformerConfig,
                          SegformerForSemanticSegmentation, SegformerImageProcessor, SwinConfig)
root = Path(sys.argv[1])
segformer = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], decoder_hidden_size=32,
                            num_attention_heads=[1, 1, 2, 2], sr_ratios=[4, 2, 1, 1], mlp_ratios=[2, 2, 2, 2],
                            num_labels=3)
SegformerForSemanticSegmentation(segformer).save_pretrained(root / "segformer")
SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "segformer")
swin = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                  window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])
mask2former = Mask2FormerConfig(backbone_config=swin, num_labels=3, num_queries=8, hidden_dim=32, feature_size=32,
                                mask_feature_size=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                                dim_feedforward=64, encoder_feedforward_dim=64, train_num_points=64)
Mask2FormerForUniversalSegmentation(mask2former).save_pretrained(root / "mask2former")
Mask2FormerImageProcessor().save_pretrained(root / "mask2former")  # hub-like defaults: the task sets size etc.
eomt = EomtConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                  patch_size=8, num_queries=8, num_blocks=1, num_labels=3, num_register_tokens=0, train_num_points=64)
EomtForUniversalSegmentation(eomt).save_pretrained(root / "eomt")
EomtImageProcessor(size={"shortest_edge": 32, "longest_edge": 32}).save_pretrained(root / "eomt")
"""

#: A Swin2SR (x2) saved to ``<out>``.
SWIN2SR = """
import sys
from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution, Swin2SRImageProcessor
config = Swin2SRConfig(image_size=16, patch_size=1, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
                       mlp_ratio=2.0, upscale=2, upsampler="pixelshuffle")
Swin2SRForImageSuperResolution(config).save_pretrained(sys.argv[1])
Swin2SRImageProcessor().save_pretrained(sys.argv[1])  # do_pad=True, as on the hub: the task turns it off
"""

#: A ViT + TrOCR-decoder with a byte tokenizer saved to ``<out>``.
TINY_TROCR = """
import sys
from transformers import (ByT5Tokenizer, TrOCRConfig, TrOCRProcessor, ViTConfig, ViTImageProcessor,
                          VisionEncoderDecoderConfig, VisionEncoderDecoderModel)
tokenizer = ByT5Tokenizer()  # bytes: no vocabulary file, no download; pad 0, </s> 1
encoder = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64)
decoder = TrOCRConfig(vocab_size=len(tokenizer), d_model=32, decoder_layers=2, decoder_attention_heads=2,
                      decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                      bos_token_id=None, decoder_start_token_id=0)
config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
VisionEncoderDecoderModel(config).save_pretrained(sys.argv[1])
TrOCRProcessor(image_processor=ViTImageProcessor(size={"height": 32, "width": 32}),
               tokenizer=tokenizer).save_pretrained(sys.argv[1])
"""
