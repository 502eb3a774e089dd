"""Readers (and toy-world writers) for biometric benchmark files in their real formats.

* `pair_bin`: insightface ``.bin`` verification pair sets (LFW, CFP-FP, AgeDB-30, ...), read
  through a restricted unpickler (`safe_pickle`) and decoded lazily.
* `ijb`: IJB-B / IJB-C 1:1 meta files of insightface's ``IJB_release`` layout.
* `alignment`: 5-point similarity alignment to the ArcFace (or the toy) template.
* `attack_lists`: MAD and PAD CSV file lists, and the PAD cross-dataset protocols as data.
* `identity_folders`: CASIA-WebFace style ``root/<identity>/<image>`` training folders.
"""
