"""sekisho (関所): an on-premises, governed generative-AI environment for Japanese organisations."""

__version__ = "0.1.0"
