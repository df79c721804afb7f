"""Suite-wide settings: one intra-op thread.

The suite shares two cores with an app server, Chromium and TensorBoard in the browser tests; with two
intra-op threads a tiny model's decode stalls on thread barriers whenever another process holds a core.
"""
import os

import torch

torch.set_num_threads(1)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
