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

#: ``<out>/dpt`` (a ViT DPT at 32 px), ``<out>/glpn`` and ``<out>/depth_anything`` (a DINOv2 backbone at 28 px; relative
#: depth, as the hub's), each with its processor.
DEPTH_MODELS = """
import sys
from pathlib import Path
from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTConfig,
                          DPTForDepthEstimation, DPTImageProcessor, GLPNConfig, GLPNForDepthEstimation,
                          GLPNImageProcessor)
root = Path(sys.argv[1])
dpt = DPTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                intermediate_size=64, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
                fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5])
DPTForDepthEstimation(dpt).save_pretrained(root / "dpt")
DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "dpt")
glpn = GLPNConfig(depths=[1, 1, 1, 1], sr_ratios=[4, 2, 1, 1], hidden_sizes=[8, 16, 32, 32],
                  num_attention_heads=[1, 1, 2, 2], mlp_ratios=[2, 2, 2, 2], decoder_hidden_size=16, max_depth=10)
GLPNForDepthEstimation(glpn).save_pretrained(root / "glpn")
GLPNImageProcessor().save_pretrained(root / "glpn")  # no fixed size, as on the hub
backbone = Dinov2Config(image_size=28, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, out_features=["stage1", "stage2", "stage3", "stage4"],
                        reshape_hidden_states=False)
anything = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, patch_size=14,
                               neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8)
DepthAnythingForDepthEstimation(anything).save_pretrained(root / "depth_anything")
DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(
    root / "depth_anything")
"""

#: ``<out>/git`` (GIT) and ``<out>/blip`` (BLIP captioning), 32 px, with a BERT word-piece tokenizer over
#: ``CAPTION_WORDS`` (a ``vocab.txt`` written here: no download).
TINY_CAPTIONERS = """
import sys
from pathlib import Path
from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor,
                          CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor)
root = Path(sys.argv[1])
root.mkdir(parents=True, exist_ok=True)
words = "a an the red green blue square circle shape that is on white of with".split()
(root / "vocab.txt").write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", ".", ","] + words))
vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
              num_attention_heads=2)
tokenizer = BertTokenizer(str(root / "vocab.txt"))  # [CLS] 2, [SEP] 3, [PAD] 0
git = GitConfig(vision_config=vision, vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                num_attention_heads=2, intermediate_size=64, max_position_embeddings=32, bos_token_id=2, eos_token_id=3,
                pad_token_id=0)
GitForCausalLM(git).save_pretrained(root / "git")
GitProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
             tokenizer=tokenizer).save_pretrained(root / "git")
tokenizer = BertTokenizer(str(root / "vocab.txt"), bos_token="[DEC]")  # BLIP's decoder starts at [DEC] (5)
text = dict(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32, encoder_hidden_size=32, bos_token_id=5, sep_token_id=3,
            eos_token_id=3, pad_token_id=0)
blip = BlipConfig(vision_config=vision, text_config=text, projection_dim=32, image_text_hidden_size=32)
BlipForConditionalGeneration(blip).save_pretrained(root / "blip")
BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
              tokenizer=tokenizer).save_pretrained(root / "blip")
"""

#: ``<out>/clip`` and ``<out>/siglip`` (zero-shot classification, 32 px) with a word-level tokenizer over a few
#: words built in code (``tokenizers``: no vocabulary file, no download): ``<s> words </s>``, pad 0, unknown words 1.
TINY_ZERO_SHOT = """
import sys
from pathlib import Path
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, PreTrainedTokenizerFast,
                          SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor)
root = Path(sys.argv[1])
torch.manual_seed(0)  # the same weights every session
words = "a an the photo of picture red green blue yellow magenta white black cat dog thing".split()
vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "<s>", "</s>", *words])}


def tokenizer():
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                           special_tokens=[("<s>", 2), ("</s>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                   eos_token="</s>")


text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            bos_token_id=2, eos_token_id=3, pad_token_id=0)
vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=2)
clip = CLIPConfig(text_config={**text, "max_position_embeddings": 16}, vision_config=vision, projection_dim=16)
CLIPModel(clip).save_pretrained(root / "clip")
CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
              tokenizer=tokenizer()).save_pretrained(root / "clip")
siglip = SiglipConfig(text_config={**text, "max_position_embeddings": 12, "projection_size": 32}, vision_config=vision)
SiglipModel(siglip).save_pretrained(root / "siglip")
SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                tokenizer=tokenizer()).save_pretrained(root / "siglip")
"""

#: ``<out>/blip`` (BLIP VQA, 32 px) and ``<out>/vilt`` (ViLT VQA, 4 placeholder answers), with a BERT word-piece
#: tokenizer made from a vocabulary in code (no file, no download); ``<out>/llava`` (a LLaVA of a tiny CLIP vision
#: tower and a tiny Llama, a word-level tokenizer with ``<image>`` and LLaVA-1.5's chat template).
TINY_VQA = """
import sys
from pathlib import Path
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor,
                          CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
                          PreTrainedTokenizerFast, ViltConfig, ViltForQuestionAnswering, ViltImageProcessor,
                          ViltProcessor)
root = Path(sys.argv[1])
torch.manual_seed(0)  # the same weights every session
words = "what colour color is it the a shape this yes no red green blue yellow magenta white one two ?".split()
vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *words])}
vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=2)
text = dict(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=32, encoder_hidden_size=32, bos_token_id=5, sep_token_id=3, pad_token_id=0)
blip = BlipConfig(vision_config=vision, text_config=text, projection_dim=16, image_text_hidden_size=16)
BlipForQuestionAnswering(blip).save_pretrained(root / "blip")
BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
              tokenizer=BertTokenizer(vocab=dict(vocab), bos_token="[DEC]")).save_pretrained(root / "blip")
vilt = ViltConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, image_size=32, patch_size=8, max_position_embeddings=40, num_labels=4)
ViltForQuestionAnswering(vilt).save_pretrained(root / "vilt")
ViltProcessor(image_processor=ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=8),
              tokenizer=BertTokenizer(vocab=dict(vocab))).save_pretrained(root / "vilt")
lm_vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "<s>", "</s>", "<image>", "user", "assistant", ":",
                                                "answer", "using", "single", "word", "or", "phrase", ".", *words])}
backend = Tokenizer(models.WordLevel(lm_vocab, unk_token="[UNK]"))
backend.normalizer = normalizers.Lowercase()
backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("<image>", "isolated"),
                                                 pre_tokenizers.Whitespace()])
backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
                                    eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
llava = LlavaConfig(vision_config=dict(vision, model_type="clip_vision_model"), image_token_index=4,
                    text_config=dict(model_type="llama", vocab_size=len(lm_vocab), hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                     max_position_embeddings=128, bos_token_id=2, eos_token_id=3, pad_token_id=0),
                    vision_feature_layer=-1)
LlavaForConditionalGeneration(llava).save_pretrained(root / "llava")
template = ("{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\\n{% else %}"
            "{{ c['text'] }}{% endif %}{% endfor %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
               tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
               num_additional_image_tokens=1, chat_template=template).save_pretrained(root / "llava")
"""

#: ``<out>/grounding_dino`` (a tiny Swin backbone and a tiny BERT with a word vocabulary built here, at the
#: ids Grounding DINO's loss reads as delimiters) and ``<out>/owlvit`` (a tiny OWL-ViT with a letter-level CLIP
#: tokenizer); 64 px images.
ZERO_SHOT_DETECTION_MODELS = """
import string, sys
from pathlib import Path
from transformers import (BertConfig, BertTokenizer, CLIPTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                          GroundingDinoImageProcessor, GroundingDinoProcessor, OwlViTConfig, OwlViTForObjectDetection,
                          OwlViTImageProcessor, OwlViTProcessor, SwinConfig)
root = Path(sys.argv[1])
words = ["car", "bike", "cat", "dog", "red", "blue", "square", "box", "person"]
# Grounding DINO splits phrases at bert-base-uncased's [CLS] 101, [SEP] 102, "." 1012, "?" 1029 (and pads at 0)
vocab = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
vocab.update({word: 1030 + i for i, word in enumerate(words)})
filler = iter(i for i in range(1030) if i not in vocab.values())
vocab = {**{f"[unused{i}]": i for i in filler}, **vocab}
tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
swin = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=2,
                  out_indices=[2, 3, 4])
bert = BertConfig(vocab_size=1030 + len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=64)
config = GroundingDinoConfig(backbone_config=swin, text_config=bert, d_model=32, encoder_layers=1, decoder_layers=2,
                             encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
                             num_queries=20, max_text_len=32, num_feature_levels=3, encoder_n_points=2, decoder_n_points=2)
GroundingDinoForObjectDetection(config).save_pretrained(root / "grounding_dino")
GroundingDinoProcessor(GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}),
                       tokenizer).save_pretrained(root / "grounding_dino")
letters = list(string.ascii_lowercase)
clip_vocab = ["!", "<|startoftext|>", "<|endoftext|>"] + letters + [c + "</w>" for c in letters] + [w + "</w>" for w in words]
clip = CLIPTokenizer(vocab={w: i for i, w in enumerate(clip_vocab)}, merges=[], model_max_length=16)
owl = OwlViTConfig(text_config=dict(vocab_size=len(clip_vocab), hidden_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=64, max_position_embeddings=16,
                                    bos_token_id=1, eos_token_id=2, pad_token_id=2),
                   vision_config=dict(image_size=64, patch_size=16, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64), projection_dim=32)
OwlViTForObjectDetection(owl).save_pretrained(root / "owlvit")
OwlViTProcessor(OwlViTImageProcessor(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64}),
                clip).save_pretrained(root / "owlvit")
"""

#: A tiny VideoMAE (4 frames of 32 px, tubelets of 2, 3 classes) with its processor, saved to ``<out>``.
TINY_VIDEOMAE = """
import sys
from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEImageProcessor
config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=3)
VideoMAEForVideoClassification(config).save_pretrained(sys.argv[1])
VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(sys.argv[1])
"""

#: ``VIDEO_FOLDER ROOT``: a ``video_folder`` dataset written with PyAV: train/ and val/ with classes ``left``, ``right``
#: and ``still`` (a coloured square moving left, right, or not; 8 frames of 32x32, mpeg4 in .mp4, one .avi and
#: one .mkv), 3 videos per class in train and 2 in val.
VIDEO_FOLDER = """
import sys
from pathlib import Path
import av, numpy as np
root = Path(sys.argv[1])
def write(path, step, colour, frames=8, size=32):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.zeros((size, size, 3), np.uint8)
            x = 12 + step * (i - frames // 2)
            pixels[10:20, max(0, x):max(0, x + 10)] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
steps = {"left": -2, "right": 2, "still": 0}
colours = [(230, 40, 40), (40, 230, 40), (40, 40, 230)]
for split, count in (("train", 3), ("val", 2)):
    for name, step in steps.items():
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            suffix = {0: ".mp4", 1: ".avi", 2: ".mkv"}[i % 3]
            write(root / split / name / f"{name}{i}{suffix}", step, colours[i % 3])
"""

#: ``<out>/simple`` and ``<out>/classic``: tiny ViTPose models (a 2-layer ViT backbone on 64x48 crops, 8 px patches:
#: 32x24 heatmaps of COCO's 17 keypoints), with the simple and the classic decoder.
VITPOSE = """
import sys
from pathlib import Path
from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation, VitPoseImageProcessor
root = Path(sys.argv[1])
for name, simple in (("simple", True), ("classic", False)):
    backbone = VitPoseBackboneConfig(image_size=[64, 48], patch_size=[8, 8], hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, mlp_ratio=2, out_indices=[2])
    VitPoseForPoseEstimation(VitPoseConfig(backbone_config=backbone, num_labels=17, use_simple_decoder=simple)
                             ).save_pretrained(root / name)
    VitPoseImageProcessor(size={"height": 64, "width": 48}).save_pretrained(root / name)
"""
