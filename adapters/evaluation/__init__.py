"""Evaluators that do not depend on a framework, and the record each validation leaves.

Every framework adapter (and ``eval``) turns its predictions into plain numpy arrays and hands
them to the evaluator of its task, so a model from any framework is scored by the same code:

- ``confusion``: the confusion matrix of class ids (classification, semantic segmentation);
- ``classification``: accuracy and macro precision / recall / F1 with a row per class;
- ``segmentation``: per-class IoU, mIoU and pixel accuracy;
- ``detection``: COCO AP through pycocotools (boxes, masks, keypoints) and a matched confusion
  matrix with a background row and column;
- ``restoration``, ``ocr``, ``depth``, ``captions``, ``vqa``: PSNR/SSIM, CER/WER, AbsRel/RMSE/δ1,
  CIDEr-D/BLEU-4 and the VQA accuracy, each with its worst samples;
- ``scorer``, ``scoring``, ``scoring_instances``, ``scoring_text``: ``eval``'s scorers, one per task, from
  predict results and a dataset's records to those evaluators;
- ``record``: what an evaluator returns (``Evaluation``), the validation record written as JSON
  (``ValidationRecord``) and ``ResultsWriter``, which keeps them in the job folder.

Host-importable: numpy only at import; pycocotools is imported where COCO evaluation runs.
"""
