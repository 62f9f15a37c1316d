"""A reader for packetdrill's script syntax (the TCP-over-IPv4 subset).

Written for this project from packetdrill's documented syntax. A script is a
sequence of events, each starting with a time:

    0      socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
    +0     < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
    +0     > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>
    +.1    read(4, ..., 1000) = 1000
    0.1~0.2 > . 1:1(0) ack 1001
    *      > F. 1:1(0) ack 1001
    0...0.5 accept(3, ..., ...) = 4
    `sysctl -q net.ipv4.tcp_sack=0`

An event may span lines while brackets are open (syscall structs). Comments are
``//`` to the end of a line and ``/* ... */``. What the parser recognises but the
runner does not model is recorded as the script's first ``Unsupported`` feature
(the parse still checks the rest of the file's syntax).
"""

from __future__ import annotations

import re
from pathlib import Path

from .model import (
    Command,
    Event,
    Expr,
    Script,
    ScriptError,
    Syscall,
    TcpOpt,
    TcpSpec,
    Time,
    Unsupported,
)

_NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"
_ONE_TIME = rf"[+]?{_NUM}"
_TIME_RE = re.compile(
    rf"^(?P<any>\*)|^(?P<start>{_ONE_TIME})(?:~(?P<range>{_ONE_TIME})|\.\.\.(?P<block>{_ONE_TIME}))?"
)
_FLAGS_RE = re.compile(r"^[SFRP.EWUA]+$")
_SEQ_RE = re.compile(r"^(\d+):(\d+)\((\d+)\)$")
_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<ellipsis>\.\.\.)
  | (?P<num>0x[0-9a-fA-F]+|\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[()\[\]{},=|\-<>:+*&])
    )""",
    re.VERBOSE,
)


def parse_file(path: str | Path) -> Script:
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(0, f"cannot read the script: {exc}") from None
    return parse_text(text, str(path))


def parse_text(text: str, path: str = "<script>") -> Script:
    script = Script(path)
    for line, logical in _logical_lines(text):
        if logical.startswith("--"):
            # packetdrill's command-line options, written in the script's header.
            name, _, value = logical[2:].partition("=")
            script.options[name.strip()] = value.strip()
            if name.strip() == "ip_version" and value.strip() != "ipv4":
                script.unsupported = script.unsupported or Unsupported(f"IP {value}", line)
            continue
        event = _parse_event(line, logical)
        if event is not None:
            script.events.append(event)
    return script


# ------------------------------------------------------------------ lines


def _strip_comments(text: str) -> str:
    """Remove // and /* */ comments (not inside strings or backticks), keeping newlines."""
    out: list[str] = []
    i, n = 0, len(text)
    quote: str | None = None
    while i < n:
        c = text[i]
        if quote is not None:
            out.append(c)
            if c == "\\" and quote == '"' and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
            i += 1
            continue
        if c in '"`':
            quote = c
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            chunk = text[i : n if j < 0 else j + 2]
            out.append("\n" * chunk.count("\n"))
            i = n if j < 0 else j + 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) per event: lines joined while brackets stay open or a
    ``%{ }%`` block or a backtick command is unfinished."""
    lines = _strip_comments(text).split("\n")
    result: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    depth = 0
    in_block = False
    in_tick = False
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not buf and not line.strip():
            continue
        if not buf:
            start = number
        buf.append(line)
        for i, c in enumerate(line):
            if in_block:
                if line.startswith("}%", i):
                    in_block = False
                continue
            if c == "`":
                in_tick = not in_tick
            elif in_tick:
                continue
            elif line.startswith("%{", i):
                in_block = True
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
        if depth <= 0 and not in_block and not in_tick:
            # A multi-line backtick command keeps its lines (it is a shell script).
            sep = "\n" if "`" in buf[0] else " "
            result.append((start, sep.join(s.strip() for s in buf)))
            buf, depth = [], 0
    if buf:
        what = "%{ block" if in_block else "backtick command" if in_tick else "bracket"
        raise ScriptError(start, f"unterminated {what}")
    return result


# ------------------------------------------------------------------ events


def _parse_time(line: int, text: str) -> tuple[Time, str]:
    m = _TIME_RE.match(text)
    if m is None or not m.group(0):
        raise ScriptError(line, f"expected a time at the start of the event, got {text[:20]!r}")
    rest = text[m.end() :]
    if rest and not rest[0].isspace() and rest[0] not in "<>`%":
        raise ScriptError(line, f"bad time {text.split()[0]!r}")
    if m.group("any"):
        return Time("any"), rest.strip()
    start = m.group("start")
    kind = "rel" if start.startswith("+") else "abs"
    value = float(start.lstrip("+"))
    end_text = m.group("range") or m.group("block")
    if end_text is None:
        return Time(kind, value), rest.strip()
    return (
        Time(
            kind,
            value,
            end=float(end_text.lstrip("+")),
            end_rel=end_text.startswith("+"),
            blocking=m.group("block") is not None,
        ),
        rest.strip(),
    )


def _parse_event(line: int, text: str) -> Event | None:
    stripped = text.strip()
    if stripped.startswith("`") and stripped.endswith("`"):
        # An init command before the first event: packetdrill runs it at time 0.
        return Event(line, Time("abs", 0.0), Command(stripped[1:-1].strip()), stripped)
    time, rest = _parse_time(line, stripped)
    if not rest:
        raise ScriptError(line, "a time without an event")
    if rest[0] in "<>":
        return Event(line, time, _parse_packet(line, rest), stripped)
    if rest.startswith("`"):
        if not rest.endswith("`") or len(rest) < 2:
            raise ScriptError(line, "unterminated backtick command")
        return Event(line, time, Command(rest[1:-1].strip()), stripped)
    if rest.startswith("%{"):
        if not rest.rstrip().endswith("}%"):
            raise ScriptError(line, "unterminated %{ block")
        return Event(line, time, Command("%{python}%"), stripped)
    return Event(line, time, _parse_syscall(line, rest), stripped)


# ----------------------------------------------------------------- packets


def _parse_packet(line: int, text: str) -> TcpSpec:
    direction = text[0]
    body = text[1:].strip()
    if body.endswith("}") and "{" in body:
        # packetdrill's packet mutation annotations ({rep ...}, {mut ...}): fuzzing.
        return TcpSpec(direction, "<fuzz annotations>", 0, 0, 0, None, None, None)
    opts_text: str | None = None
    lt = body.find("<")
    if lt >= 0:
        if not body.endswith(">"):
            raise ScriptError(line, "TCP options: '<' without a closing '>' at the end")
        opts_text = body[lt + 1 : -1].strip()
        body = body[:lt].strip()
    words = body.split()
    if not words:
        raise ScriptError(line, "a packet without flags")
    first = words[0]
    if first in ("icmp", "udp", "udplite", "gre", "mpls") or first.startswith("["):
        # Recognised, not modelled: the parser still checks the rest of the file.
        return TcpSpec(direction, f"<{first}>", 0, 0, 0, None, None, None)
    if not _FLAGS_RE.match(first):
        raise ScriptError(line, f"bad TCP flags {first!r} (letters S . F R P E W U)")
    if len(words) < 2:
        raise ScriptError(line, "expected seq:end(len) after the flags")
    m = _SEQ_RE.match(words[1])
    if m is None:
        raise ScriptError(line, f"bad sequence range {words[1]!r} (want start:end(length))")
    seq, end, length = (int(g) for g in m.groups())
    if (end - seq) & 0xFFFFFFFF != length:
        raise ScriptError(line, f"sequence range {words[1]}: end - start is not the length")
    ack = win = None
    rest = words[2:]
    i = 0
    while i < len(rest):
        key = rest[i]
        if key in ("ack", "win", "urg") and i + 1 < len(rest):
            try:
                value = int(rest[i + 1], 0)
            except ValueError:
                raise ScriptError(line, f"{key}: not a number {rest[i + 1]!r}") from None
            if key == "ack":
                ack = value
            elif key == "win":
                win = value
            i += 2
            continue
        raise ScriptError(line, f"unexpected {key!r} in a TCP packet")
    if "." in first and ack is None and direction == "<":
        raise ScriptError(line, "an ACK ('.') packet without 'ack N'")
    any_options = opts_text == "..."
    options = None if opts_text is None or any_options else _parse_options(line, opts_text)
    return TcpSpec(direction, first, seq, end, length, ack, win, options, any_options)


def _int(line: int, text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ScriptError(line, f"{what}: not a number {text!r}") from None


def _parse_options(line: int, text: str) -> tuple[TcpOpt, ...]:
    if not text:
        return ()
    out: list[TcpOpt] = []
    for raw in text.split(","):
        words = raw.split()
        if not words:
            raise ScriptError(line, "an empty TCP option")
        kind = words[0]
        if kind in ("mss", "wscale"):
            if len(words) != 2:
                raise ScriptError(line, f"TCP option {kind}: want '{kind} N'")
            out.append(TcpOpt(kind, _int(line, words[1], kind)))
        elif kind in ("nop", "eol", "sackOK"):
            if len(words) != 1:
                raise ScriptError(line, f"TCP option {kind} takes no value")
            out.append(TcpOpt(kind))
        elif kind == "TS":
            if len(words) != 5 or words[1] != "val" or words[3] != "ecr":
                raise ScriptError(line, "TCP option TS: want 'TS val N ecr N'")
            out.append(TcpOpt("TS", (_int(line, words[2], "TS val"), _int(line, words[4], "ecr"))))
        elif kind == "sack":
            blocks = []
            for w in words[1:]:
                a, sep, b = w.partition(":")
                if not sep:
                    raise ScriptError(line, f"sack block {w!r}: want start:end")
                blocks.append((_int(line, a, "sack"), _int(line, b, "sack")))
            if not 1 <= len(blocks) <= 4:
                raise ScriptError(line, "TCP option sack: 1 to 4 blocks")
            out.append(TcpOpt("sack", tuple(blocks)))
        elif kind in ("FO", "md5", "exp", "mptcp", "tfo", "unknown"):
            out.append(TcpOpt(f"unsupported:{kind}"))
        else:
            raise ScriptError(line, f"unknown TCP option {kind!r}")
    return tuple(out)


# ---------------------------------------------------------------- syscalls


class _Tokens:
    def __init__(self, line: int, text: str) -> None:
        self.line = line
        self.items: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if m is None or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise ScriptError(line, f"unexpected character {text[pos:].strip()[0]!r}")
            kind = m.lastgroup or ""
            self.items.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.items[self.i] if self.i < len(self.items) else ("end", "")

    def take(self, value: str | None = None, kind: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            want = value or kind
            got = tok[1] or "end of line"
            raise ScriptError(self.line, f"expected {want!r}, got {got!r}")
        self.i += 1
        return tok


def _parse_syscall(line: int, text: str) -> Syscall:
    toks = _Tokens(line, text)
    _kind, name = toks.take(kind="name")
    toks.take("(")
    args: list[Expr] = []
    if toks.peek()[1] != ")":
        args.append(_expr(toks))
        while toks.peek()[1] == ",":
            toks.take(",")
            args.append(_expr(toks))
    toks.take(")")
    toks.take("=")
    ret = _expr(toks)
    errno_name = None
    if toks.peek()[0] == "name":
        errno_name = toks.take()[1]
        if toks.peek()[1] == "(":
            # The errno's description, as strace prints it: free text, not checked.
            toks.i = len(toks.items)
    if toks.peek()[0] != "end":
        raise ScriptError(line, f"unexpected {toks.peek()[1]!r} after the syscall's result")
    return Syscall(name, tuple(args), ret, errno_name)


def _expr(toks: _Tokens) -> Expr:
    left = _term(toks)
    if toks.peek()[1] != "|":
        return left
    parts = [left]
    while toks.peek()[1] == "|":
        toks.take("|")
        parts.append(_term(toks))
    return Expr("or", tuple(parts))


def _term(toks: _Tokens) -> Expr:
    kind, value = toks.peek()
    if kind == "num":
        toks.take()
        return Expr("int", int(value, 0)) if "." not in value else Expr("float", float(value))
    if value == "-":
        toks.take()
        _k, num = toks.take(kind="num")
        return Expr("int", -int(num, 0))
    if kind == "str":
        toks.take()
        return Expr("str", bytes(value[1:-1], "utf-8").decode("unicode_escape"))
    if kind == "ellipsis":
        toks.take()
        return Expr("ellipsis")
    if value == "[":
        toks.take()
        items: list[Expr] = []
        if toks.peek()[1] != "]":
            items.append(_expr(toks))
            while toks.peek()[1] == ",":
                toks.take(",")
                items.append(_expr(toks))
        toks.take("]")
        return Expr("list", tuple(items))
    if value == "{":
        toks.take()
        fields: list[tuple[str | None, Expr]] = []
        while toks.peek()[1] != "}":
            key = None
            if toks.peek()[0] == "name" and toks.items[toks.i + 1 : toks.i + 2] == [("punct", "=")]:
                key = toks.take()[1]
                toks.take("=")
            fields.append((key, _expr(toks)))
            if toks.peek()[1] == ",":
                toks.take(",")
            elif toks.peek()[1] != "}":
                raise ScriptError(toks.line, f"expected ',' or '}}', got {toks.peek()[1]!r}")
        toks.take("}")
        return Expr("struct", tuple(fields))
    if kind == "name":
        toks.take()
        if toks.peek()[1] == "(":
            toks.take("(")
            cargs: list[Expr] = []
            if toks.peek()[1] != ")":
                cargs.append(_expr(toks))
                while toks.peek()[1] == ",":
                    toks.take(",")
                    cargs.append(_expr(toks))
            toks.take(")")
            return Expr("call", (value, tuple(cargs)))
        return Expr("name", value)
    raise ScriptError(toks.line, f"unexpected {value or 'end of line'!r} in a syscall")
