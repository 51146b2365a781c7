"""The life of a cell, as small ints (compared on the hot path).

NEW        created; its ``on_start`` has not finished (messages wait)
RUNNING    handling messages
SUSPENDED  failed or exited and waiting for its supervisor's decision, or torn
           down and waiting to be rebuilt (messages wait)
STOPPING   stopping its children and running ``on_stop``
DEAD       gone: every message goes to dead letters, asks fail with ActorDead
"""

from typing import Final

NEW: Final = 0
RUNNING: Final = 1
SUSPENDED: Final = 2
STOPPING: Final = 3
DEAD: Final = 4
