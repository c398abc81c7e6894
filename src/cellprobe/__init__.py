"""cellprobe: how well do frozen image encoders serve cell instance segmentation and classification?"""

__version__ = "0.1.0"
