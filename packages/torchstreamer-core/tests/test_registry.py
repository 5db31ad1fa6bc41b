"""The registry: which factory builds the stream of a module, and entry-point discovery."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from torchstreamer.core import (
    BaseStream,
    Handler,
    NotStreamableError,
    StreamError,
    check_edges,
    create_stream,
    register_streamer,
    unregister_streamer,
)
from torchstreamer.core import registry as registry_module


class Gain(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return 2 * x


class SubGain(Gain):
    pass


class SubSubGain(SubGain):
    pass


class Other(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Both(SubGain, Other):
    pass


class Unknown(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.cumsum(-1)


class TaggedStream(BaseStream):
    """An element-wise stream that remembers which factory built it."""

    def __init__(self, module: nn.Module, tag: str, edges: str = "") -> None:
        super().__init__()
        self.module = module
        self.tag = tag
        self.edges = edges

    def step(self, x: Tensor, final: bool = False) -> Tensor | None:
        return self.module(x) if x.size(-1) > 0 else None


def tagged(tag: str) -> Callable[[nn.Module], TaggedStream]:
    return lambda module: TaggedStream(module, tag)


def declining(calls: list[nn.Module]) -> Callable[[nn.Module], None]:
    def factory(module: nn.Module) -> None:
        calls.append(module)

    return factory


def tag_of(module: nn.Module, **options: Any) -> str:
    stream = create_stream(module, **options)
    assert isinstance(stream, TaggedStream)
    return stream.tag


def install(registry: ModuleType, handler: Handler) -> None:
    registry._insert(*registry._checked(handler, origin="test"))


class TestResolution:
    def test_most_specific_type_in_the_mro_wins(self, registry: ModuleType) -> None:
        register_streamer(Gain, tagged("gain"))
        register_streamer(SubGain, tagged("sub"))
        assert tag_of(Gain()) == "gain"
        assert tag_of(SubGain()) == "sub"
        assert tag_of(SubSubGain()) == "sub"

    def test_multiple_inheritance_follows_the_mro(self, registry: ModuleType) -> None:
        register_streamer(Other, tagged("other"))
        assert tag_of(Both()) == "other"
        register_streamer(Gain, tagged("gain"))
        # Both's MRO is Both, SubGain, Gain, Other, ...
        assert tag_of(Both()) == "gain"

    def test_user_factory_beats_installed_handler_of_the_same_type(
        self, registry: ModuleType
    ) -> None:
        install(registry, Handler(Gain, tagged("installed"), priority=100))
        assert tag_of(Gain()) == "installed"
        register_streamer(Gain, tagged("user"))
        assert tag_of(Gain()) == "user"
        assert tag_of(SubGain()) == "user"

    def test_installed_handler_of_a_subclass_beats_user_factory_of_the_base(
        self, registry: ModuleType
    ) -> None:
        register_streamer(Gain, tagged("user base"))
        install(registry, Handler(SubGain, tagged("installed sub")))
        assert tag_of(SubGain()) == "installed sub"
        assert tag_of(SubSubGain()) == "installed sub"
        assert tag_of(Gain()) == "user base"

    def test_a_declining_factory_passes_the_module_on(self, registry: ModuleType) -> None:
        calls: list[nn.Module] = []
        register_streamer(SubGain, declining(calls))
        register_streamer(Gain, tagged("base"))
        module = SubSubGain()
        assert tag_of(module) == "base"
        assert calls == [module]

    def test_a_declining_user_factory_falls_back_to_installed_of_the_same_type(
        self, registry: ModuleType
    ) -> None:
        calls: list[nn.Module] = []
        register_streamer(Gain, tagged("user base"))
        register_streamer(SubGain, declining(calls))
        install(registry, Handler(SubGain, tagged("installed sub")))
        assert tag_of(SubGain()) == "installed sub"
        assert len(calls) == 1

    def test_installed_handlers_are_tried_by_priority(self, registry: ModuleType) -> None:
        calls: list[nn.Module] = []
        install(registry, Handler(Gain, tagged("low"), priority=-3))
        install(registry, Handler(Gain, tagged("high"), priority=7))
        install(registry, Handler(Gain, tagged("default")))
        assert tag_of(Gain()) == "high"
        install(registry, Handler(Gain, declining(calls), priority=9))
        assert tag_of(Gain()) == "high"
        assert len(calls) == 1

    def test_everything_declines(self, registry: ModuleType) -> None:
        calls: list[nn.Module] = []
        register_streamer(Gain, declining(calls))
        install(registry, Handler(Gain, declining(calls)))
        with pytest.raises(NotStreamableError, match="Gain"):
            create_stream(Gain())
        assert len(calls) == 2

    def test_registering_again_replaces(self, registry: ModuleType) -> None:
        register_streamer(Gain, tagged("first"))
        register_streamer(Gain, tagged("second"))
        assert tag_of(Gain()) == "second"


# A linear class hierarchy for the property test: Level0 <- Level1 <- Level2 <- Level3.
LEVELS: list[type[nn.Module]] = [Gain]
for _depth in range(1, 4):
    LEVELS.append(type(f"Level{_depth}", (LEVELS[-1],), {}))

# per level: (user factory: absent / declines / accepts, installed: [(priority, accepts)])
level_plan = st.tuples(
    st.sampled_from(["absent", "declines", "accepts"]),
    st.lists(st.tuples(st.integers(-5, 5), st.booleans()), max_size=3, unique_by=lambda h: h[0]),
)


@contextmanager
def empty_registry() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry_module, "_user", {})
        patch.setattr(registry_module, "_installed", {})
        patch.setattr(registry_module, "_discovered", True)
        yield


@given(plans=st.lists(level_plan, min_size=4, max_size=4), target=st.integers(0, 3))
def test_resolution_order_matches_a_reference(
    plans: list[tuple[str, list[tuple[int, bool]]]], target: int
) -> None:
    # the order the contract gives, computed here: most specific class first; at each class
    # the user factory, then installed handlers by falling priority
    expected = None
    for level in range(target, -1, -1):
        user, installed = plans[level]
        order = [("user", user == "accepts")] if user != "absent" else []
        order += [(f"p{priority}", accepts) for priority, accepts in sorted(installed)[::-1]]
        accepted = [name for name, accepts in order if accepts]
        if accepted:
            expected = f"L{level} {accepted[0]}"
            break

    with empty_registry():
        for level, (user, installed) in enumerate(plans):
            if user != "absent":
                tag = f"L{level} user"
                register_streamer(
                    LEVELS[level], tagged(tag) if user == "accepts" else declining([])
                )
            for priority, accepts in installed:
                factory = tagged(f"L{level} p{priority}") if accepts else declining([])
                install(registry_module, Handler(LEVELS[level], factory, priority=priority))
        module = LEVELS[target]()
        if expected is None:
            with pytest.raises(NotStreamableError):
                create_stream(module)
        else:
            assert tag_of(module) == expected


class TestFactories:
    def test_edges_is_passed_to_factories_that_take_it(self, registry: ModuleType) -> None:
        seen: list[str] = []

        def keyword_only(module: nn.Module, *, edges: str) -> TaggedStream:
            seen.append(edges)
            return TaggedStream(module, "keyword", edges)

        register_streamer(Gain, keyword_only)
        assert create_stream(Gain(), edges="valid").edges == "valid"
        assert create_stream(Gain()).edges == "pad"
        assert seen == ["valid", "pad"]

    def test_edges_reaches_var_keyword_factories(self, registry: ModuleType) -> None:
        def var_keyword(module: nn.Module, **options: str) -> TaggedStream:
            return TaggedStream(module, "kwargs", options["edges"])

        register_streamer(Gain, var_keyword)
        assert create_stream(Gain(), edges="valid").edges == "valid"

    def test_a_stream_class_with_an_edges_keyword_is_a_factory(self, registry: ModuleType) -> None:
        class EdgesStream(TaggedStream):
            def __init__(self, module: nn.Module, *, edges: str = "pad") -> None:
                super().__init__(module, "class", edges)

        register_streamer(Gain, EdgesStream)
        assert create_stream(Gain(), edges="valid").edges == "valid"

    def test_factories_without_edges_get_the_module_alone(self, registry: ModuleType) -> None:
        calls: list[tuple[Any, ...]] = []

        def bare(*args: Any) -> TaggedStream:
            calls.append(args)
            return TaggedStream(args[0], "bare")

        register_streamer(Gain, bare)
        module = Gain()
        for edges in ("pad", "valid"):
            assert tag_of(module, edges=edges) == "bare"
        assert calls == [(module,), (module,)]

    def test_the_stream_wraps_the_module_itself(self, registry: ModuleType) -> None:
        register_streamer(Gain, tagged("gain"))
        module = Gain()
        stream = create_stream(module)
        assert isinstance(stream, TaggedStream)
        assert stream.module is module
        x = torch.randn(2, 5)
        torch.testing.assert_close(stream(x), 2 * x)

    def test_a_factory_returning_a_non_stream_is_a_type_error(self, registry: ModuleType) -> None:
        def not_a_stream(module: nn.Module) -> Any:
            return nn.Identity()

        register_streamer(Gain, not_a_stream)
        with pytest.raises(TypeError, match=r"Gain.*register_streamer.*Identity.*BaseStream"):
            create_stream(Gain())


class TestErrors:
    def test_unknown_module_names_its_type_and_register_streamer(
        self, registry: ModuleType
    ) -> None:
        with pytest.raises(NotStreamableError) as caught:
            create_stream(Unknown())
        message = str(caught.value)
        assert "Unknown" in message
        assert "register_streamer(Unknown" in message
        assert isinstance(caught.value, StreamError)
        assert isinstance(caught.value, ValueError)

    def test_without_installed_handlers_the_message_says_what_to_install(
        self, registry: ModuleType
    ) -> None:
        with pytest.raises(NotStreamableError, match="torchstreamer-layers"):
            create_stream(Unknown())
        install(registry, Handler(Gain, tagged("gain")))
        with pytest.raises(NotStreamableError) as caught:
            create_stream(Unknown())
        assert "torchstreamer-layers" not in str(caught.value)

    @pytest.mark.parametrize("edges", ["same", "PAD", "", None, 0])
    def test_bad_edges_are_rejected_before_any_factory_runs(
        self, registry: ModuleType, edges: Any
    ) -> None:
        calls: list[nn.Module] = []
        register_streamer(Gain, declining(calls))
        with pytest.raises(
            StreamError, match=r"edges must be 'pad' or 'valid', got " + repr(edges)
        ):
            create_stream(Gain(), edges=edges)
        with pytest.raises(StreamError):
            check_edges(edges)
        assert calls == []

    @pytest.mark.parametrize("edges", ["pad", "valid"])
    def test_good_edges(self, edges: str) -> None:
        check_edges(edges)

    def test_create_stream_needs_a_module(self, registry: ModuleType) -> None:
        with pytest.raises(TypeError, match=r"nn\.Module, got function"):
            create_stream(lambda x: x)  # type: ignore[arg-type]

    @pytest.mark.parametrize("module_type", [int, Gain(), "Gain", Tensor])
    def test_register_needs_a_module_type(self, registry: ModuleType, module_type: Any) -> None:
        with pytest.raises(TypeError, match=r"nn\.Module subclass"):
            register_streamer(module_type, tagged("x"))
        assert registry._user == {}

    def test_register_needs_a_callable(self, registry: ModuleType) -> None:
        with pytest.raises(TypeError, match="callable"):
            register_streamer(Gain, "TaggedStream")  # type: ignore[arg-type]
        assert registry._user == {}


class TestUnregister:
    def test_unregister_removes_the_user_factory(self, registry: ModuleType) -> None:
        register_streamer(Gain, tagged("gain"))
        unregister_streamer(Gain)
        with pytest.raises(NotStreamableError):
            create_stream(Gain())

    def test_unregister_reveals_the_installed_handler(self, registry: ModuleType) -> None:
        install(registry, Handler(Gain, tagged("installed")))
        register_streamer(Gain, tagged("user"))
        unregister_streamer(Gain)
        assert tag_of(Gain()) == "installed"
        unregister_streamer(Gain)  # nothing left to remove: no error
        assert tag_of(Gain()) == "installed"

    def test_unregister_touches_only_the_exact_type(self, registry: ModuleType) -> None:
        register_streamer(Gain, tagged("gain"))
        register_streamer(SubGain, tagged("sub"))
        unregister_streamer(SubSubGain)
        assert tag_of(SubSubGain()) == "sub"
        unregister_streamer(SubGain)
        assert tag_of(SubSubGain()) == "gain"
