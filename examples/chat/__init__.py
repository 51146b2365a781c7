"""The chat example: rooms and sessions as supervised actors.

``_protocol`` is the client protocol (JSON text frames, validated into
msgspec Structs); ``_room`` is the room actor, whose history lives in a
``trouper.stores`` store.
"""
