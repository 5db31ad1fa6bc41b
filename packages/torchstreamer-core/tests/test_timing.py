"""Timing arithmetic: hand-computed figures, the classic formulas, and real layers' dependencies."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from torchstreamer.core import Timing


def figures(timing: Timing) -> tuple[int, Fraction, Fraction]:
    return timing.receptive_field, timing.rate, timing.lookahead


def conv(kernel: int, stride: int = 1, dilation: int = 1, padding: int = 0) -> Timing:
    return Timing.window(dilation * (kernel - 1) + 1, stride, -padding)


def nearest(factor: int) -> Timing:
    return Timing.upsampling(factor, lambda j: j // factor, lambda j: j // factor)


class TestWindow:
    @pytest.mark.parametrize(
        ("kernel", "stride", "dilation", "padding", "expected"),
        [
            (1, 1, 1, 0, (1, Fraction(1), Fraction(0))),
            (5, 1, 1, 2, (5, Fraction(1), Fraction(2))),  # "same": centred
            (5, 1, 1, 0, (5, Fraction(1), Fraction(4))),  # valid: reads 4 ahead
            (3, 1, 2, 0, (5, Fraction(1), Fraction(4))),  # dilated: span 5
            (3, 1, 3, 3, (7, Fraction(1), Fraction(3))),
            (4, 2, 1, 1, (4, Fraction(1, 2), Fraction(2))),  # last(j) = 2j + 2
            (2, 2, 1, 0, (2, Fraction(1, 2), Fraction(1))),
            (3, 5, 1, 0, (3, Fraction(1, 5), Fraction(2))),  # stride beyond the kernel
        ],
    )
    def test_figures(
        self,
        kernel: int,
        stride: int,
        dilation: int,
        padding: int,
        expected: tuple[int, Fraction, Fraction],
    ) -> None:
        assert figures(conv(kernel, stride, dilation, padding)) == expected

    def test_index_maps(self) -> None:
        timing = conv(4, stride=2, padding=1)
        assert [timing.first(j) for j in range(4)] == [-1, 1, 3, 5]
        assert [timing.last(j) for j in range(4)] == [2, 4, 6, 8]

    def test_causal_window_has_no_lookahead(self) -> None:
        assert figures(conv(3, padding=2)) == (3, Fraction(1), Fraction(0))
        assert Timing.window(3).shifted(-2).lookahead == 0

    def test_identity(self) -> None:
        assert figures(Timing.identity()) == (1, Fraction(1), Fraction(0))
        assert figures(Timing.chain([])) == (1, Fraction(1), Fraction(0))

    @pytest.mark.parametrize(("span", "stride"), [(0, 1), (3, 0), (-1, 2), (2, -2)])
    def test_invalid_windows(self, span: int, stride: int) -> None:
        with pytest.raises(ValueError, match="positive"):
            Timing.window(span, stride)

    @pytest.mark.parametrize(("period_in", "period_out"), [(0, 1), (1, 0), (-2, 1), (3, -3)])
    def test_invalid_periods(self, period_in: int, period_out: int) -> None:
        with pytest.raises(ValueError, match="periods must be positive"):
            Timing(period_in, period_out, lambda j: j, lambda j: j)


class TestChain:
    def test_strided_then_plain(self) -> None:
        # output j of the second conv reads first-conv outputs j..j+2, i.e. inputs 2j..2j+6
        timing = conv(3, stride=2).then(conv(3))
        assert figures(timing) == (7, Fraction(1, 2), Fraction(6))
        assert (timing.first(5), timing.last(5)) == (10, 16)

    def test_padded_strided_then_padded(self) -> None:
        timing = Timing.chain([conv(3, stride=2, padding=1), conv(3, padding=1)])
        assert figures(timing) == (7, Fraction(1, 2), Fraction(3))
        assert (timing.first(0), timing.last(0)) == (-3, 3)

    def test_order_matters(self) -> None:
        # plain then strided: 1 + 2 + 2 = 5 inputs, against 7 the other way round
        assert figures(conv(3).then(conv(3, stride=2))) == (5, Fraction(1, 2), Fraction(4))

    def test_chain_equals_then(self) -> None:
        parts = [conv(3, 2, 1, 1), conv(5, 1, 2, 4), conv(2, 2)]
        chained = Timing.chain(parts)
        stepwise = parts[0].then(parts[1]).then(parts[2])
        assert figures(chained) == figures(stepwise)
        assert [chained.last(j) for j in range(6)] == [stepwise.last(j) for j in range(6)]


class TestUpsampling:
    def test_nearest(self) -> None:
        timing = nearest(2)
        assert figures(timing) == (1, Fraction(2), Fraction(0))
        assert (timing.period_in, timing.period_out) == (1, 2)

    def test_transposed_convolution(self) -> None:
        # ConvTranspose1d(kernel 4, stride 2, padding 1): output o reads inputs
        # ceil((o - 2) / 2) .. floor((o + 1) / 2): o = 0 -> -1..0, o = 1 -> 0..1
        timing = Timing.upsampling(2, lambda o: -((2 - o) // 2), lambda o: (o + 1) // 2)
        assert figures(timing) == (2, Fraction(2), Fraction(1, 2))

    def test_up_then_down_has_rate_one_and_period_two(self) -> None:
        timing = nearest(2).then(conv(2, stride=2))
        assert figures(timing) == (1, Fraction(1), Fraction(0))
        assert (timing.period_in, timing.period_out) == (2, 2)
        assert [timing.first(j) for j in range(4)] == [0, 1, 2, 3]

    def test_down_then_up(self) -> None:
        # outputs 2m and 2m + 1 both read inputs 2m and 2m + 1: output 2m looks one ahead
        timing = conv(2, stride=2).then(nearest(2))
        assert figures(timing) == (2, Fraction(1), Fraction(1))
        assert [(timing.first(j), timing.last(j)) for j in range(4)] == [
            (0, 1),
            (0, 1),
            (2, 3),
            (2, 3),
        ]


class TestParallel:
    def test_union_of_windows(self) -> None:
        timing = Timing.parallel([conv(3, padding=1), conv(5, padding=2), conv(2)])
        assert figures(timing) == (5, Fraction(1), Fraction(2))
        assert (timing.first(4), timing.last(4)) == (2, 6)

    def test_period_is_the_lcm(self) -> None:
        plain = conv(2, stride=2)  # periods 2 in, 1 out
        detour = nearest(2).then(conv(4, stride=4)).shifted(1)  # periods 4 in, 2 out
        timing = Timing.parallel([plain, detour])
        assert (timing.period_in, timing.period_out) == (4, 2)
        assert figures(timing) == (3, Fraction(1, 2), Fraction(2))
        assert [(timing.first(j), timing.last(j)) for j in range(3)] == [(0, 2), (2, 4), (4, 6)]

    def test_different_rates_are_refused(self) -> None:
        with pytest.raises(ValueError, match="share one rate, got rates 1/2, 1"):
            Timing.parallel([conv(3), conv(2, stride=2)])

    def test_no_paths(self) -> None:
        with pytest.raises(ValueError, match="at least one path"):
            Timing.parallel([])


def test_shifted_moves_every_index() -> None:
    timing = conv(4, stride=2).shifted(-3)
    assert [(timing.first(j), timing.last(j)) for j in range(3)] == [(-3, 0), (-1, 2), (1, 4)]
    assert figures(timing) == (4, Fraction(1, 2), Fraction(0))


# ---------------------------------------------------------------------------------------------
# Properties


KERNEL, STRIDE, DILATION, PADDING = (st.integers(1, n) for n in (7, 4, 3, 3))
window_layer = st.tuples(KERNEL, STRIDE, DILATION, PADDING.map(lambda p: p - 1))


@given(layers=st.lists(window_layer, min_size=1, max_size=6))
def test_chain_of_windows_follows_the_classic_formulas(
    layers: list[tuple[int, int, int, int]],
) -> None:
    timing = Timing.chain([conv(*layer) for layer in layers])
    field, lookahead, jump = 1, 0, 1
    for kernel, stride, dilation, padding in layers:
        field += (kernel - 1) * dilation * jump
        lookahead += ((kernel - 1) * dilation - padding) * jump
        jump *= stride
    assert timing.receptive_field == field
    assert timing.rate == Fraction(1, jump)
    assert timing.lookahead == lookahead


def network(layers: list[tuple[str, int, int, int, int]]) -> tuple[nn.Module, Timing]:
    """Real layers with all-one weights, so that no dependency can cancel out."""
    modules: list[nn.Module] = []
    timings: list[Timing] = []
    for kind, kernel, stride, dilation, padding in layers:
        if kind == "up":
            modules.append(nn.Upsample(scale_factor=stride, mode="nearest"))
            timings.append(nearest(stride))
        else:
            layer = nn.Conv1d(1, 1, kernel, stride, padding, dilation, bias=False)
            nn.init.ones_(layer.weight)
            modules.append(layer)
            timings.append(conv(kernel, stride, dilation, padding))
    return nn.Sequential(*modules), Timing.chain(timings)


any_layer = st.one_of(
    st.tuples(
        st.just("conv"), st.integers(1, 5), st.integers(1, 3), st.integers(1, 2), st.integers(0, 2)
    ),
    st.tuples(st.just("up"), st.just(1), st.sampled_from([2, 4]), st.just(1), st.just(0)),
)


@given(layers=st.lists(any_layer, min_size=1, max_size=4))
def test_index_maps_match_the_dependencies_of_real_layers(
    layers: list[tuple[str, int, int, int, int]],
) -> None:
    module, timing = network(layers)
    field, jump, taps = 1, 1, 1
    for kind, kernel, stride, dilation, _ in layers:
        if kind == "conv":
            field += (kernel - 1) * dilation * jump
            jump *= stride
            taps *= kernel
    length = 2 * field + 4 * jump + 16  # room for every phase of the pattern, edges aside
    with torch.no_grad():
        # the network is linear: its response to each unit impulse is a row of its Jacobian
        # (float32 is exact here: every value is a small integer)
        response = module(torch.eye(length).unsqueeze(1))[:, 0, :]
    # outputs with a tap on padding have lost dependencies: only the others are compared
    interior = (response.sum(0) == taps).nonzero().flatten().tolist()
    touched = response != 0
    firsts = touched.double().argmax(0).tolist()
    lasts = (length - 1 - touched.flip(0).double().argmax(0)).tolist()
    for j in interior:
        assert (timing.first(j), timing.last(j)) == (firsts[j], lasts[j]), f"output {j}"
    assert len(interior) >= timing.period_out
