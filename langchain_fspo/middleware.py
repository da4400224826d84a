"""`FSPOMiddleware`: personalise a LangChain agent's `ChatFSPO` calls to the agent's user.

`langchain.agents.create_agent` runs its model through middleware. This one reads the user
from the agent's runtime context (`agent.invoke(..., context=Ctx(user_id="ada"))`) and hands
it, with the adapter to use, to `ChatFSPO` on every model call: it sets the request's
`model_settings` (`user_id=`, `model=`), which the agent binds onto the model, so they reach
`ChatFSPO` as call keywords. `ChatFSPO` then reads that user's examples from its memory, or
from the memory the middleware names, or from the agent's own store.

Needs the `langchain` package (`pip install "langchain-fspo[agents]"`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

try:
    from langchain.agents.middleware.types import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
    )
except ModuleNotFoundError as e:  # pragma: no cover - exercised in a fresh install
    if e.name is None or e.name.split(".")[0] != "langchain":
        raise
    msg = (
        f"FSPOMiddleware needs the `[agents]` extra ({e}); install it: "
        'pip install "langchain-fspo[agents]"'
    )
    raise ImportError(msg) from e
from langchain_core.messages import AIMessage
from langchain_core.runnables.config import ensure_config
from langgraph.store.base import BaseStore

from langchain_fspo.chat_models import ChatFSPO, ShotSource
from langchain_fspo.errors import AgentConfigError
from langchain_fspo.memory import DEFAULT_ROOT, PreferenceMemory
from langchain_fspo.preference import validate_user_id

__all__ = ["AdapterSelector", "FSPOMiddleware"]

logger = logging.getLogger(__name__)

AdapterSelector = str | Mapping[str, str] | Callable[[str | None], str | None]
"""Which adapter serves a user: one name for all, a `user_id -> name` mapping, or a function.

A user missing from the mapping, or a function returning None, gets the model's own
adapter (`ChatFSPO.model_name`).
"""

_Response = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]


class FSPOMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Agent middleware that personalises every `ChatFSPO` call to the agent's user.

    The user is found, in this order: `resolve_user(request)` when given; the agent's runtime
    context (`context.<user_key>` for a dataclass or pydantic context, `context[user_key]`
    for a dict); `config["configurable"][user_key]`. No user means a zero-shot prompt, unless
    `require_user=True`.

    The examples come from `memory` when given; else from the model's own
    `ChatFSPO.memory`; else, when the agent was created with a `store`, from a
    `PreferenceMemory` over that store (namespace `store_namespace`).

    The agent's model must be a `ChatFSPO`: any other model raises `AgentConfigError`
    (a silently un-personalised agent is the failure this middleware exists to prevent).
    Put this middleware after any middleware that swaps the model for another one, or pass
    `strict=False` to let calls to other models through untouched.

    Example:
        ```python
        from dataclasses import dataclass

        from langchain.agents import create_agent
        from langchain_fspo import ChatFSPO, PreferenceMemory
        from langchain_fspo.middleware import FSPOMiddleware


        @dataclass
        class Context:
            user_id: str


        memory = PreferenceMemory()
        memory.add("ada", prompt="Recommend a film.", chosen="Arrival.", rejected="Cars 3.")
        llm = ChatFSPO.from_pretrained("path/or/hub-repo-of-adapter", max_tokens=64)
        agent = create_agent(
            model=llm,
            tools=[],
            middleware=[FSPOMiddleware(memory=memory)],
            context_schema=Context,
        )
        result = agent.invoke(
            {"messages": [{"role": "user", "content": "Recommend a book."}]},
            context=Context(user_id="ada"),
        )
        print(result["messages"][-1].response_metadata["example_ids"])
        ```
    """

    def __init__(
        self,
        *,
        memory: ShotSource | None = None,
        adapter: AdapterSelector | None = None,
        user_key: str = "user_id",
        resolve_user: Callable[[ModelRequest[Any]], str | None] | None = None,
        require_user: bool = False,
        use_store: bool = True,
        store_namespace: tuple[str, ...] = DEFAULT_ROOT,
        strict: bool = True,
    ) -> None:
        """Configure the middleware.

        Args:
            memory: Where users' examples are read; None: the model's own memory, then the
                agent's store (see `use_store`).
            adapter: The adapter per user (see `AdapterSelector`); None: the model's own.
            user_key: Attribute (or key) of the runtime context, and key of
                `config["configurable"]`, that holds the user id.
            resolve_user: A function `request -> user_id | None` that replaces the lookup.
            require_user: Raise `AgentConfigError` when no user is found (default: answer
                zero-shot, as `ChatFSPO` does).
            use_store: With no `memory` here nor on the model, read examples from the agent's
                store (`create_agent(store=...)`) through a `PreferenceMemory`.
            store_namespace: The `PreferenceMemory` namespace in the agent's store.
            strict: Raise `AgentConfigError` when the agent's model is not a `ChatFSPO`;
                False: leave such calls untouched.
        """
        super().__init__()
        if not user_key:
            msg = "`user_key` must name the context attribute holding the user id, got ''."
            raise AgentConfigError(msg)
        given: object = adapter  # checked at run time for untyped callers
        if given is not None and not isinstance(given, str | Mapping) and not callable(given):
            msg = (
                "`adapter` must be an adapter name, a {user_id: adapter} mapping or a "
                f"function user_id -> adapter, got {type(given).__name__}."
            )
            raise AgentConfigError(msg)
        self.memory = memory
        self.adapter = adapter
        self.user_key = user_key
        self.resolve_user = resolve_user
        self.require_user = require_user
        self.use_store = use_store
        self.store_namespace = store_namespace
        self.strict = strict
        self._store_memory: tuple[BaseStore, PreferenceMemory] | None = None
        self._store_lock = threading.Lock()

    # ------------------------------------------------------------------ resolution

    def user_for(self, request: ModelRequest[Any]) -> str | None:
        """The user of this model call (see the class docstring for the order)."""
        user: object
        if self.resolve_user is not None:
            user = self.resolve_user(request)
        else:
            user = self._user_from_context(getattr(request.runtime, "context", None))
            if user is None:
                configurable = ensure_config().get("configurable") or {}
                user = configurable.get(self.user_key)
        if user is None:
            if self.require_user:
                msg = (
                    f"FSPOMiddleware found no user: set `{self.user_key}` in the agent's "
                    f"context (agent.invoke(..., context=...)) or in "
                    f'config["configurable"]["{self.user_key}"], or pass require_user=False '
                    "to answer zero-shot."
                )
                raise AgentConfigError(msg)
            return None
        return validate_user_id(user)

    def _user_from_context(self, context: object) -> object:
        if context is None:
            return None
        if isinstance(context, Mapping):
            return context.get(self.user_key)
        return getattr(context, self.user_key, None)

    def adapter_for(self, user_id: str | None) -> str | None:
        """The adapter for `user_id`, or None for the model's own adapter."""
        selector = self.adapter
        if selector is None or isinstance(selector, str):
            return selector
        if isinstance(selector, Mapping):
            return selector.get(user_id) if user_id is not None else None
        return selector(user_id)

    def _memory_for(self, model: ChatFSPO, store: BaseStore | None) -> ShotSource | None:
        """The memory to use instead of the model's own, or None to keep the model's."""
        if self.memory is not None:
            return self.memory if self.memory is not model.memory else None
        if model.memory is not None or not self.use_store or store is None:
            return None
        with self._store_lock:
            if self._store_memory is None or self._store_memory[0] is not store:
                self._store_memory = (
                    store,
                    PreferenceMemory(store, namespace=self.store_namespace),
                )
            return self._store_memory[1]

    def prepare(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        """The request with the user, adapter (and memory) set for `ChatFSPO`.

        `wrap_model_call` calls this; it is public so that other middleware can compose it.
        """
        model = request.model
        if not isinstance(model, ChatFSPO):
            if self.strict:
                msg = (
                    f"FSPOMiddleware personalises ChatFSPO models, but the agent's model is "
                    f"{type(model).__name__}. Pass a ChatFSPO to create_agent (or place "
                    "FSPOMiddleware after middleware that swaps models), or use "
                    "FSPOMiddleware(strict=False) to let other models through untouched."
                )
                raise AgentConfigError(msg)
            logger.debug("FSPOMiddleware: %s is not a ChatFSPO; left as is.", type(model).__name__)
            return request
        user = self.user_for(request)
        settings = dict(request.model_settings)
        if user is not None:
            settings["user_id"] = user
        adapter = self.adapter_for(user)
        if adapter is not None:
            settings["model"] = adapter
        memory = self._memory_for(model, getattr(request.runtime, "store", None))
        if memory is None:
            return request.override(model_settings=settings)
        personal = model.model_copy(update={"memory": memory})
        return request.override(model=personal, model_settings=settings)

    # ------------------------------------------------------------------ hooks

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> _Response:
        """Run the model call for the resolved user and adapter."""
        return handler(self.prepare(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> _Response:
        """Async `wrap_model_call`."""
        return await handler(self.prepare(request))
