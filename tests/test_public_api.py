"""Pins the public names: adding one is a decision, removing one breaks users."""

import trouper

PUBLIC = {
    "Actor",
    "ActorContext",
    "ActorDead",
    "ActorError",
    "ActorKilled",
    "ActorNotFound",
    "ActorRef",
    "AdminConfig",
    "AdminHandle",
    "AskTimeout",
    "AtLeastOnceDelivery",
    "Backoff",
    "Breaker",
    "BreakerChanged",
    "CallContext",
    "CallError",
    "ChildSpec",
    "Channel",
    "ChannelClosed",
    "CircuitOpen",
    "ConfigurationError",
    "ConnectionLost",
    "ConsistentHash",
    "DeadLetter",
    "DeadLetters",
    "EventStatistics",
    "DiscoveryUnavailable",
    "Forbidden",
    "FrameTooLarge",
    "HandshakeFailed",
    "InvalidArgument",
    "LocalProtocolError",
    "LoggingMiddleware",
    "MailboxFull",
    "MemberInfo",
    "Middleware",
    "NameTaken",
    "Node",
    "NodeDown",
    "NodeHandle",
    "NodeStats",
    "PersistentActor",
    "OneForAll",
    "OneForOne",
    "PoisonPill",
    "PoolClosed",
    "PoolError",
    "PoolPolicy",
    "PoolStatus",
    "PoolTimeout",
    "ProtocolError",
    "RateLimit",
    "RateLimited",
    "Registry",
    "RemoteError",
    "RemoteProtocolError",
    "RestForOne",
    "RestartIntensity",
    "Retry",
    "SpawnRefused",
    "StaleWriter",
    "Strategy",
    "StreamReader",
    "SubscriberOverflow",
    "SubscriberStatistics",
    "Subscription",
    "SubscriptionEnded",
    "SupervisionError",
    "Supervisor",
    "TLSConfig",
    "Terminated",
    "Timer",
    "TokenAuth",
    "TransportError",
    "TrouperError",
    "Unauthorized",
    "UnhandledMessage",
    "bearer",
    "child",
    "configure_logging",
    "current_call",
    "handler",
    "issue_token",
    "message",
    "metrics_registry",
    "metrics_text",
    "open_node",
    "rpc",
    "run",
    "service",
}


def test_public_names_are_pinned() -> None:
    assert set(trouper.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(trouper, name) is not None


def test_error_hierarchy_matches_the_design() -> None:
    actor_errors = [
        trouper.ChannelClosed,
        trouper.ActorDead,
        trouper.ActorNotFound,
        trouper.UnhandledMessage,
        trouper.MailboxFull,
        trouper.AskTimeout,
        trouper.NameTaken,
        trouper.SpawnRefused,
        trouper.SubscriberOverflow,
    ]
    transport_errors = [
        trouper.NodeDown,
        trouper.ConnectionLost,
        trouper.HandshakeFailed,
        trouper.ProtocolError,
        trouper.LocalProtocolError,
        trouper.RemoteProtocolError,
        trouper.FrameTooLarge,
    ]
    for cls in actor_errors:
        assert issubclass(cls, trouper.ActorError)
    for cls in transport_errors:
        assert issubclass(cls, trouper.TransportError)
    for cls in [
        trouper.ActorError,
        trouper.RemoteError,
        trouper.TransportError,
        trouper.SupervisionError,
        trouper.ConfigurationError,
    ]:
        assert issubclass(cls, trouper.TrouperError)
    assert issubclass(trouper.AskTimeout, TimeoutError)
    codes = set()
    for cls in [*actor_errors, *transport_errors, trouper.RemoteError, trouper.SupervisionError]:
        assert isinstance(cls.error_code, str) and cls.error_code
        assert isinstance(cls.is_retryable, bool)
        codes.add(cls.error_code)
    assert len(codes) == len(actor_errors) + len(transport_errors) + 2
    assert trouper.NodeDown.is_retryable and not trouper.HandshakeFailed.is_retryable
    assert trouper.NodeDown("x").retry_delay is not None


def test_remote_error_carries_its_origin() -> None:
    err = trouper.RemoteError("ValueError", "bad", "Traceback...", "n1", "/user/a")
    assert (err.type_name, err.message) == ("ValueError", "bad")
    assert (err.node, err.path) == ("n1", "/user/a")
    assert "ValueError" in str(err) and "/user/a" in str(err)


def test_the_transport_api_is_public() -> None:
    import trouper.transports as transports

    for name in (
        "connect",
        "serve",
        "broadcast",
        "graceful_shutdown",
        "ConnectionPool",
        "MessageSession",
        "MessageServer",
        "SessionStatistics",
        "ServerStatistics",
        "SendTimeout",
    ):
        assert name in transports.__all__ and getattr(transports, name) is not None
    assert issubclass(transports.SendTimeout, trouper.TransportError)
    assert issubclass(transports.SendTimeout, TimeoutError)
    assert transports.SendTimeout.is_retryable


def test_forbidden_is_an_unauthorized() -> None:
    assert issubclass(trouper.Forbidden, trouper.Unauthorized)
    assert trouper.Forbidden.error_code == "forbidden"


def test_postgres_pool_names() -> None:
    import trouper.pools
    import trouper.stores

    assert callable(trouper.pools.postgres) and trouper.pools.PgPool is not None
    assert callable(trouper.pools.postgres_pool)
    errors = [trouper.pools.StoreConflict, trouper.pools.StoreTimeout]
    errors.append(trouper.pools.TransactionConflict)
    assert all(issubclass(cls, trouper.stores.StoreError) for cls in errors)
    assert len({cls.error_code for cls in errors}) == len(errors)
    assert [cls.is_retryable for cls in errors] == [False, True, True]


def test_redis_pool_and_store_names() -> None:
    import trouper.pools
    import trouper.stores

    assert callable(trouper.pools.redis) and trouper.pools.RedisPool is not None
    assert issubclass(trouper.stores.StoreUnavailable, trouper.stores.StoreError)
    assert trouper.stores.StoreUnavailable.is_retryable
