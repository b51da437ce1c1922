"""The captioning lab: "Show, Attend and Tell" in English and Persian on procedural scenes or the
user's COCO-style captions — free-running BLEU, batched beam search, attention scored against ground
truth, and attacks on the captioner.

    robustlab run recipes/captioning-shapes.yaml --out runs/captioning-shapes
"""
