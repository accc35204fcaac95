"""Convolutional ResNets and CNNs: their spec, analytic kernels and finite networks.

Inputs are signals (N, P, C) or images (N, H, W, C), channels last, with circular padding
and stride 1, as neural-tangents' stax builds them (see `engine.conv.architecture`).
"""
