"""Command sequence numbers: where a controller counts from when it attaches, and whose commands the echo shows.

A command block carries a sequence number; the PLC acts on a number that differs from the last one
it saw and echoes it (`command_echo`). A number runs from 1 to the register's top value and then
starts at 1 again, never 0, which a PLC holds at power-up. `origin` picks the number a controller
counts on from; `EchoWatch` remembers the numbers it sent and finds the echo of one it did not.
"""

from __future__ import annotations

import random
from collections import deque

from hardware.modbus.errors import AnotherController

JUMP = 1 << 14  # a random origin lies fewer numbers than this past the echo
ORIGINS = ("random", "echo")
_UNECHOED = 64  # numbers sent and not yet seen echoed that a late echo may still show
_SPREAD = random.SystemRandom()  # not seeded: two controllers must not draw alike


def next_sequence(sequence: int, modulus: int) -> int:
    """The command sequence number after `sequence` in a register of `modulus` values: 1 to modulus - 1, never 0.

    A PLC holds 0 at power-up, so a first command numbered 0 would not be new to it.
    """
    return sequence % (modulus - 1) + 1


def advance(sequence: int, steps: int, modulus: int) -> int:
    """The number `steps` numbers after `sequence` (`next_sequence` applied `steps` times)."""
    if not steps:
        return sequence
    start = sequence if sequence else modulus - 1  # 0 is followed by 1, as modulus - 1 is
    return (start - 1 + steps) % (modulus - 1) + 1


def origin(echo: int, held: int | None, modulus: int, how: str) -> tuple[int, int | None]:
    """The last number to count on from, and the block still pending in the window (None: none).

    Next is the echo + 1, unless the window still `held` that very number (sent, and not acted on
    yet or refused: the PLC would not see a change; it may still echo it late). With `how="random"`
    the count then jumps on by up to `JUMP` - 1 numbers, drawn afresh at each attach: two
    controllers attached at one echo number apart, so each sees the other's accepted commands.
    """
    pending = held if held == next_sequence(echo, modulus) else None
    sequence = echo if pending is None else pending
    if how == "random":
        sequence = advance(sequence, _SPREAD.randrange(JUMP), modulus)
        if next_sequence(sequence, modulus) == held:  # the window holds it: the PLC would see no change
            sequence = next_sequence(sequence, modulus)
    return sequence, pending


class EchoWatch:
    """The sequence numbers one controller sent, and the PLC's echo as last read: an echo of another's is refused.

    Once another controller's command was seen, `check` refuses every later status until `attach`.
    What was sent is kept across attaches: a block sent before one (in flight, or left in the
    window) may still be echoed after it. So a number can be in `sent` twice, once from before a
    PLC restart (the PLC holds 0 again and a controller counting on from the echo starts over at 1)
    and once from after; `check` orders numbers by their latest send, so a number sent again is not
    taken for its earlier send (an echo seemingly going back, a false other controller).
    """

    def __init__(self, where: str, line: str) -> None:
        self.where = where  # the echo register, as error messages name it
        self.line = line  # the line's name
        self.seen: int | None = None  # the echo as last read; None: not watching (a read-only line)
        self.sent: deque[int] = deque(maxlen=_UNECHOED)  # numbers sent, the latest last; kept across attaches
        self.rival: str | None = None  # why another controller was seen

    def attach(self, echo: int, pending: int | None) -> None:
        """Watch from `echo`; a `pending` block (perhaps this controller's, sent before) may still be echoed."""
        self.seen, self.rival = echo, None
        if pending is not None:
            self.sent.append(pending)

    def check(self, echo: int, last: int) -> None:
        """Nothing, if `echo` is the one seen before, one this controller sent after it, or 0 (a PLC's power-up).

        `last` is the number this controller sent last, named in the message.

        Raises:
            AnotherController: the echo moved to a number this controller did not send, or back to
                one it sent before the echo seen (a block re-sent by another client); and after that,
                on every call until `attach`.
        """
        if self.rival is not None:
            raise AnotherController(self.rival)
        if self.seen is None or echo == self.seen:
            return
        if echo != 0 and echo not in self.sent:
            self.rival = (
                f"{self.where}: the PLC accepted command {echo}, which this client did not send (its last: {last}; "
                f"echo before: {self.seen}): another controller writes to line {self.line!r}"
            )
            raise AnotherController(self.rival)
        if echo != 0 and self.seen in self.sent and self._latest(echo) < self._latest(self.seen):
            self.rival = (  # blocks go out one at a time, each after the last was echoed: only a re-send goes back
                f"{self.where}: the PLC's echo went back from {self.seen} to {echo}, a command this client sent "
                f"before: another client re-sent it (its last: {last}); another controller writes to line "
                f"{self.line!r}"
            )
            raise AnotherController(self.rival)
        self.seen = echo

    def _latest(self, number: int) -> int:
        """The place of the latest send of `number` in `sent` (which holds it)."""
        return max(i for i, sent in enumerate(self.sent) if sent == number)
