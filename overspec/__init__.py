"""overspec: what did fine-tuning cost my foundation model?"""

__version__ = "0.1.0"
