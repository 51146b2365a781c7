"""``NameClaims``, the chat room's name table, as a state machine: whatever
sessions claim and release, each name (in canonical form) has at most one
holder, and only its holder's resume secret takes it over."""

from __future__ import annotations

import pytest
from examples.chat._claims import NameClaims
from examples.chat._protocol import canonical_name
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

# Spellings of few names, so that sessions collide often.
USERS = st.sampled_from(["admin", "Admin", "ADMIN ", "\uff41dmin", "ada", "Ada", "bo"])
SESSIONS = st.integers(min_value=0, max_value=4)
RESUMES = st.sampled_from(["", "tab-1", "tab-2"])


class ClaimsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.claims: NameClaims[int] = NameClaims()
        self.model: dict[str, tuple[int, str]] = {}  # canonical name -> (session, resume)

    @rule(user=USERS, session=SESSIONS, resume=RESUMES)
    def claim(self, user: str, session: int, resume: str) -> None:
        name = canonical_name(user)
        held = self.model.get(name)
        expected = held is None or held[0] == session or (bool(held[1]) and held[1] == resume)
        assert self.claims.may_claim(user, session, resume) == expected
        if not expected:
            with pytest.raises(ValueError, match="another session's"):
                self.claims.claim(user, session, resume)
            return
        replaced = self.claims.claim(user, session, resume)
        assert replaced == (None if held is None or held[0] == session else held[0])
        self.model[name] = (session, resume)

    @rule(user=USERS, session=SESSIONS)
    def release(self, user: str, session: int) -> None:
        name = canonical_name(user)
        held = self.model.get(name)
        mine = held is not None and held[0] == session
        assert self.claims.release(user, session) == mine
        if mine:
            del self.model[name]

    @invariant()
    def one_holder_per_name(self) -> None:
        assert len(self.claims) == len(self.model)
        for name, (session, _) in self.model.items():
            assert self.claims.holder(name) == session
            assert self.claims.holder(name.upper()) == session  # any spelling


ClaimsMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_name_claims = ClaimsMachine.TestCase
