"""The examples of the torch-streamer 0.0.2 README, run as written, then checked.

The examples' code is kept as users have it, untyped.
"""
# mypy: disable-error-code="no-untyped-def, no-any-return, operator"

from fractions import Fraction

from torchstreamer.testing import assert_streams_exactly


def test_seed_sequential_example_runs_as_written() -> None:
    import torch as pt
    from torch import nn

    import torchstreamer as pts

    net = nn.Sequential(
        nn.Conv1d(1, 128, 1),
        nn.GELU(),
        nn.Conv1d(128, 128, 2, stride=2),
        nn.GELU(),
        nn.Conv1d(128, 128, 2, stride=2),
        nn.AvgPool1d(2),
        nn.ConvTranspose1d(128, 128, 2, stride=2),
        nn.GELU(),
        nn.ConvTranspose1d(128, 128, 2, stride=2),
        nn.GELU(),
        nn.Conv1d(128, 1, 1),
    )

    stream = pts.Sequential1dStream(net)

    x = pt.randn(1, 203)
    assert_streams_exactly(net, x, stream=stream, partitions=3)
    assert stream.rate == Fraction(1, 2)  # strides 2, 2, 2 then upsampling 2, 2


def test_seed_resnet_example_runs_as_written() -> None:
    import torch as pt
    import torch.nn as nn

    import torchstreamer as pts

    net = nn.Sequential(
        nn.Conv1d(1, 128, 1),
        *[
            pts.Residual1d(
                nn.Sequential(
                    nn.GELU(),
                    nn.Conv1d(128, 256, 3),
                    nn.GELU(),
                    nn.Conv1d(256, 128, 1),
                )
            )
            for _ in range(3)
        ],
        nn.Conv1d(128, 1, 1),
    )

    stream = pts.Sequential1dStream(net)

    assert_streams_exactly(net, pt.randn(1, 50), stream=stream, partitions=3)
    assert stream.in_channels == 1
    assert stream.receptive_field == 7


def test_seed_custom_handler_example_runs_as_written() -> None:
    import typing as T

    import torch as pt

    import torchstreamer as pts

    # create a simple residual module
    class MyResBlock(pt.nn.Module):
        def __init__(self, inner: pt.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: pt.Tensor) -> pt.Tensor:
            return x + self.inner(x)

    # create a custom stream handler for the residual module
    class MyResBlockStream(pts.BaseStream):
        def __init__(self, net: MyResBlock):
            super().__init__()
            self.net = net

        def forward(self, x: pt.Tensor, final: bool = False) -> T.Optional[pt.Tensor]:
            # apply the inner network of the residual module
            y = self.net.inner(x.unsqueeze(0))

            # accommodate the network's receptive field by stripping
            # elements from the edge of the residual connection
            pad = (x.shape[-1] - y.shape[-1]) // 2
            res = x[..., pad:-pad]

            # add the residual connection to the outputs
            return y.squeeze(0) + res

    # register the streamer with the library
    pts.register_streamer(MyResBlock, lambda net: MyResBlockStream(net))

    try:
        # create the neural network containing the custom resblock module
        net = pt.nn.Sequential(
            pt.nn.Conv1d(1, 32, 1),
            MyResBlock(pt.nn.Conv1d(32, 32, 3)),
            pt.nn.Conv1d(32, 1, 1),
        )

        # create a stream that uses the custom stream handler
        # whenever it encounters an instance of MyResBlock
        stream = pts.Sequential1dStream(net)

        # the 0.0.2-style stream is given [C, T] blocks: one block, streamed at once, is what
        # the handler computes (the module's own forward cannot add lengths T and T - 2)
        assert isinstance(stream.stages[1], MyResBlockStream)
        x = pt.randn(1, 40)
        with pt.no_grad():
            h = net[0](x)
            expected = net[2](h[:, 1:-1] + net[1].inner(h))
            y = stream(x, final=True)
        assert y is not None
        assert pt.allclose(y, expected, atol=1e-6)
    finally:
        pts.unregister_streamer(MyResBlock)
