"""Stands in for a warm predict worker (`python -m adapters.entrypoint --serve ...`) in the servicer's
predict tests: the same protocol on stdin/stdout as `adapters.serve`, no framework.

Appends "START <pid> <grandchild pid> <time>", "ARGS <pid> <its arguments as JSON>" and "GPUS <pid>
<its CUDA_VISIBLE_DEVICES>" to `children.log` in its cwd (the job dir) and keeps a
grandchild in its process group; for each batch it sleeps $VY_TEST_PREDICT_SECONDS, appends
"BATCH <pid> <images> <time>", and answers each image with one box of class 0 ("red") (an image whose
size is 3×3 makes it exit 3 instead, one of 5×5 gets an error of its own; an image given boxes: a person in
each, with one keypoint at its centre), and each video file (MP4, AVI, Matroska) with two classes and, as its
text, the size and sha256 of the bytes it got.
$VY_TEST_WORKER_FAIL set: it exits 1 at start, printing that to stderr.

With ``--export`` it stands in for an export child instead: "EXPORT <pid> <arguments>" in children.log,
then by $VY_TEST_EXPORT: ``pass`` (default: a model and a passed export.json, exit 0), ``fail`` (a failed
validation, exit 3), ``crash`` (exit 1, its reason on stderr) or ``hang`` (a file ``hanging`` in --out,
then sleeps). With ``--eval`` it stands in for an evaluation child: "EVAL <pid> <arguments>", then by
$VY_TEST_EVAL: ``pass`` (an eval.json of 8 images, $VY_TEST_EVAL_RIGHT of them right, default 7; exit 0),
``fail`` (exit 1, its reason on stderr) or ``hang``.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import time

from PIL import Image

if "--export" in sys.argv:  # stands in for `--export onnx --out DIR ...` (adapters.onnx_export) too
    args = sys.argv[1:]
    out, mode = args[args.index("--out") + 1], os.environ.get("VY_TEST_EXPORT", "pass")
    with open("children.log", "a") as log:
        log.write(f"EXPORT {os.getpid()} {json.dumps(args)}\n")
    print("exporting", flush=True)
    if mode == "crash":
        print("export failed: RuntimeError: an op the exporter does not know", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "hang":
        open(os.path.join(out, "hanging"), "w").close()
        time.sleep(300)
    passed = mode == "pass"
    with open(os.path.join(out, "model.onnx"), "wb") as model:
        model.write(b"onnx" * 10)
    checkpoint = args[args.index("--checkpoint") + 1]
    report = {"format": "onnx", "file": os.path.join(out, "model.onnx"), "size_bytes": 40, "checkpoint": checkpoint,
              "dynamic": "--dynamic" in args, "half": "--half" in args, "exporter": "fake 1.0", "opset": 17,
              "inputs": ["pixel_values"], "outputs": ["logits"],
              "validation": {"images": 8, "max_abs_diff": 1e-6 if passed else 3.5, "tolerance": 1e-3,
                             "worst_output": "logits", "agreement_kind": "top-1", "agreement": 1.0 if passed else 0.25,
                             "min_agreement": 0.9, "passed": passed, "pytorch_images_per_s": 100.0,
                             "onnx_images_per_s": 150.0}}
    with open(os.path.join(out, "export.json"), "w") as f:
        json.dump(report, f)
    sys.exit(0 if passed else 3)
if "--eval" in sys.argv:  # stands in for `--eval --checkpoint P --out DIR ...` (adapters.evaluate)
    args = sys.argv[1:]
    out, mode = args[args.index("--out") + 1], os.environ.get("VY_TEST_EVAL", "pass")
    with open("children.log", "a") as log:
        log.write(f"EVAL {os.getpid()} {json.dumps(args)}\n")
    print(json.dumps({"done": 4, "total": 8}), flush=True)
    if mode == "fail":
        print("eval failed: the dataset has classes the model does not know: owl", file=sys.stderr, flush=True)
        sys.exit(1)
    if mode == "hang":
        time.sleep(300)
    dataset = args[args.index("--dataset") + 1] if "--dataset" in args else "/data/own"
    right = int(os.environ.get("VY_TEST_EVAL_RIGHT", "7"))
    record = {"version": 1, "job": None, "task": "classification", "epoch": None, "step": None, "source": "eval",
              "evaluator": "visionyard.classification", "classes": ["red", "blue"],
              "metrics": {"val/accuracy": right / 8}, "per_class": [
                  {"class": "red", "recall": (right - 4) / 4, "support": 4}, {"class": "blue", "recall": 1.0, "support": 4}],
              "confusion_matrix": [[right - 4, 8 - right], [0, 4]], "confusion_labels": ["red", "blue"],
              "dataset": dataset, "dataset_hash": "blake2b:" + hashlib.sha256(dataset.encode()).hexdigest(),
              "checkpoint": args[args.index("--checkpoint") + 1], "split": args[args.index("--split") + 1],
              "images": 8, "seconds": 0.5}
    with open(os.path.join(out, "eval.json"), "w") as f:
        json.dump(record, f)
    sys.exit(0)
if os.environ.get("VY_TEST_WORKER_FAIL"):
    print("RuntimeError: no such checkpoint format", file=sys.stderr, flush=True)
    sys.exit(1)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open("children.log", "a") as log:
    log.write(f"START {os.getpid()} {grandchild.pid} {time.time()}\n")
    log.write(f"ARGS {os.getpid()} {json.dumps(sys.argv[1:])}\n")
    log.write(f"GPUS {os.getpid()} {os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}\n")
print(json.dumps({"ready": True, "pid": os.getpid(), "load_ms": 12.5}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    time.sleep(float(os.environ.get("VY_TEST_PREDICT_SECONDS", "0")))
    with open("children.log", "a") as log:
        log.write(f"BATCH {os.getpid()} {len(request['items'])} {time.time()}\n")
    results = []
    for item in request["items"]:
        try:
            with open(item["image"], "rb") as f:
                data = f.read()
        except OSError as exc:  # a file whose answer nobody waits for any more is gone
            results.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        if data[4:8] == b"ftyp" or data[:4] in (b"RIFF", b"\x1a\x45\xdf\xa3"):  # a video file, sent whole
            results.append({"result": {"predictions": [{"label": "left", "score": 0.7, "index": 0},
                                                       {"label": "still", "score": 0.2, "index": 2}][:item["top_k"]],
                                       "text": f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}",
                                       "width": 32, "height": 32, "timings_ms": {"total": 1.0}}})
            continue
        try:
            size = Image.open(item["image"]).size
        except OSError as exc:
            results.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        if size == (3, 3):
            sys.exit(3)
        if size == (5, 5):
            results.append({"error": "UnidentifiedImageError: cannot identify image file"})
        else:
            result = {"predictions": [{"label": "red", "score": 0.9, "index": 0, "box": [1.0, 2.0, 5.0, 6.0]}],
                      "width": 8, "height": 8,
                      "timings_ms": {"load": 12.5, "total": 1.0}}
            if item.get("annotate"):  # the image itself stands in for the drawing
                result["image_png_b64"] = base64.b64encode(open(item["image"], "rb").read()).decode()
            if item.get("labels"):  # a zero-shot task ranks the labels it is given
                result["predictions"] = [{"label": label, "score": 0.5, "index": i}
                                         for i, label in enumerate(item["labels"])]
            if item.get("boxes"):  # a top-down pose task: a person in each box it is given
                result["predictions"] = [{"label": "person", "score": 0.8, "index": 0, "box": box,
                                          "keypoints": [[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0.9]]}
                                         for box in item["boxes"]]
            if item.get("question"):  # a question answering task answers it
                result["text"] = f"an answer to {item['question']}"
                result["depth_png_b64"] = result.get("image_png_b64", "")
            results.append({"result": result})
    print(json.dumps({"id": request["id"], "results": results}), flush=True)
