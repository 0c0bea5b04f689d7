"""Screening models: timm backbones, the Lightning module and ONNX export."""
