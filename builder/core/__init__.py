"""The bottom layer of builder: errors, test results, digests, the one way to run or spawn a
process, and the run journal that undoes every host object. It imports nothing of builder outside
itself (tests/unit/test_layers.py), so every other layer may use it.
"""
